import type pino from 'pino';
import { isSafeId, type Clock } from '../../protocol/index.js';
import {
  checkPasswordStrength,
  CredentialVerifier,
  generateReaderPassword,
  hashPassword,
  type KdfParams,
} from './broker/credentials.js';
import { AuthThrottle, type AuthThrottleSettings } from './broker/limits.js';
import type { AuthResult } from './broker/transport.js';
import type { ReaderAdmission } from './ingest/ingest.js';
import type { IngestStore, ReaderRecord } from './store/ingest-store.js';

export interface ReaderRegistryOptions {
  store: IngestStore;
  clock: Clock;
  logger: pino.Logger;
  kdf: KdfParams;
  /** Key of the verified-credential cache (kept outside the DB); absent: memory-only cache. */
  authCacheKey?: Buffer;
  /** Called after a revoke, to drop the live connection. */
  onRevoked?: (readerId: string) => void;
  /**
   * Called after a reader's password changed (re-enrollment): a session that logged in with the old
   * password must not outlive it (credentials are re-issued because they may have leaked).
   */
  onPasswordChanged?: (readerId: string) => void;
  /** Failed-login throttling (config limits.authThrottle); default DEFAULT_AUTH_THROTTLE. */
  authThrottle?: AuthThrottleSettings;
}

export interface AddReaderInput {
  readerId: string;
  /** Omit to have a 256-bit password generated (returned once). */
  password?: string;
  clientRef: string | null;
  label?: string;
}

/** Minimal reader registry (the provisioning issue grows it): credentials, client mapping, revocation. */
export class ReaderRegistry {
  private readonly verifier: CredentialVerifier;
  private readonly log: pino.Logger;

  constructor(private readonly opts: ReaderRegistryOptions) {
    this.log = opts.logger.child({ module: 'registry' });
    // failed-login throttle per config limits.authThrottle (defaults in broker/limits.ts)
    const throttle = new AuthThrottle({ monotonic: () => performance.now() }, opts.authThrottle);
    this.verifier = opts.authCacheKey
      ? new CredentialVerifier({ cacheKey: opts.authCacheKey, tags: opts.store.authTags, throttle })
      : new CredentialVerifier({ throttle });
  }

  async addReader(input: AddReaderInput): Promise<{ readerId: string; password: string }> {
    if (!isSafeId(input.readerId)) {
      throw new Error('readerId must use letters, digits, ".", "_" and "-" (≤ 64 chars)');
    }
    if (input.clientRef !== null && !isSafeId(input.clientRef)) {
      throw new Error('clientRef must use letters, digits, ".", "_" and "-" (≤ 64 chars)');
    }
    if (this.opts.store.getReader(input.readerId)) throw new Error(`reader ${input.readerId} already exists`);
    const password = input.password ?? generateReaderPassword();
    const weak = checkPasswordStrength(password);
    if (weak) throw new Error(weak);
    const passwordHash = await hashPassword(password, this.opts.kdf);
    this.opts.store.insertReader({
      readerId: input.readerId,
      passwordHash,
      clientRef: input.clientRef,
      label: input.label ?? null,
      revokedAt: null,
      createdAt: this.opts.clock.now(),
    });
    this.log.info({ readerId: input.readerId }, 'reader added');
    return { readerId: input.readerId, password };
  }

  async setPassword(readerId: string, password: string): Promise<void> {
    this.require(readerId);
    const weak = checkPasswordStrength(password);
    if (weak) throw new Error(weak);
    this.opts.store.setPasswordHash(readerId, await hashPassword(password, this.opts.kdf));
    this.verifier.forget(readerId);
    this.opts.onPasswordChanged?.(readerId);
  }

  revokeReader(readerId: string): void {
    this.require(readerId);
    this.opts.store.setRevoked(readerId, this.opts.clock.now());
    this.verifier.forget(readerId);
    this.log.info({ readerId }, 'reader revoked');
    this.opts.onRevoked?.(readerId);
  }

  /** Un-revokes a reader (its old password works again). */
  restoreReader(readerId: string): void {
    this.require(readerId);
    this.opts.store.setRevoked(readerId, null);
  }

  moveReader(readerId: string, clientRef: string | null): void {
    this.require(readerId);
    if (clientRef !== null && !isSafeId(clientRef)) throw new Error('clientRef uses unsafe characters');
    this.opts.store.setClientRef(readerId, clientRef, this.opts.clock.now());
    this.log.info({ readerId }, 'reader moved');
  }

  /** KDF verifications run so far (a cache miss each). */
  get kdfRuns(): number {
    return this.verifier.kdfRuns;
  }

  getReader(readerId: string): ReaderRecord | undefined {
    return this.opts.store.getReader(readerId);
  }

  listReaders(): ReaderRecord[] {
    return this.opts.store.listReaders();
  }

  admission(readerId: string): ReaderAdmission {
    const r = this.opts.store.getReader(readerId);
    if (!r) return 'unknown';
    return r.revokedAt === null ? 'active' : 'revoked';
  }

  /** With `source` (the peer address), failed checks are throttled per source and reader (broker/limits.ts). */
  async authenticate(readerId: string, password: string, source?: string): Promise<AuthResult> {
    const r = this.opts.store.getReader(readerId);
    if (!r) return 'unknown-reader';
    if (r.revokedAt !== null) return 'revoked';
    if (source !== undefined) return this.verifier.check(readerId, password, r.passwordHash, source);
    return (await this.verifier.verify(readerId, password, r.passwordHash)) ? 'ok' : 'bad-password';
  }

  private require(readerId: string): ReaderRecord {
    const r = this.opts.store.getReader(readerId);
    if (!r) throw new Error(`unknown reader ${readerId}`);
    return r;
  }
}
