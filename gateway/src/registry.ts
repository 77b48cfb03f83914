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
import { isPromiseLike, type Awaitable } from './store/awaitable.js';
import type { ReaderDirectory, ReaderRecord } from './store/ingest-store.js';

export interface ReaderRegistryOptions {
  /** The registry's rows: the SQLite file, or on PostgreSQL the directory every instance shares. */
  store: ReaderDirectory;
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
  /**
   * Another instance revoked the reader (a shared directory only): drop its live connection here. The
   * broker account and the rest of `onRevoked` were done by the instance that revoked it.
   */
  onRevokedElsewhere?: (readerId: string) => void;
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

/**
 * The reader registry: credentials, client mapping, revocation. Reads (login, admission) are
 * synchronous from the store; writes are awaited by the async methods (`addReader`, `setPassword`)
 * and tracked for the synchronous ones (`revokeReader`, `restoreReader`, `moveReader`: the effect on
 * this instance is immediate, `written()` waits until the store has them).
 */
export class ReaderRegistry {
  private readonly verifier: CredentialVerifier;
  private readonly log: pino.Logger;
  private readonly pending = new Set<Promise<void>>();
  private failed: Error[] = [];

  constructor(private readonly opts: ReaderRegistryOptions) {
    this.log = opts.logger.child({ module: 'registry' });
    // failed-login throttle per config limits.authThrottle (defaults in broker/limits.ts)
    const throttle = new AuthThrottle({ monotonic: () => performance.now() }, opts.authThrottle);
    this.verifier = opts.authCacheKey
      ? new CredentialVerifier({ cacheKey: opts.authCacheKey, tags: opts.store.authTags, throttle })
      : new CredentialVerifier({ throttle });
    opts.store.onRemoteChange?.((before, after) => this.changedElsewhere(before, after));
  }

  /**
   * Resolves when every write made through this registry so far is in the store; rejects with the
   * first failure since the last call (the store has put its row back to what it holds).
   */
  async written(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    const failed = this.failed;
    this.failed = [];
    if (failed[0]) throw failed[0];
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
    await this.opts.store.insertReader({
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
    await this.opts.store.setPasswordHash(readerId, await hashPassword(password, this.opts.kdf));
    this.verifier.forget(readerId);
    this.opts.onPasswordChanged?.(readerId);
  }

  revokeReader(readerId: string): void {
    this.require(readerId);
    this.track(this.opts.store.setRevoked(readerId, this.opts.clock.now()));
    this.verifier.forget(readerId);
    this.log.info({ readerId }, 'reader revoked');
    this.opts.onRevoked?.(readerId);
  }

  /** Un-revokes a reader (its old password works again). */
  restoreReader(readerId: string): void {
    this.require(readerId);
    this.track(this.opts.store.setRevoked(readerId, null));
  }

  moveReader(readerId: string, clientRef: string | null): void {
    this.require(readerId);
    if (clientRef !== null && !isSafeId(clientRef)) throw new Error('clientRef uses unsafe characters');
    this.track(this.opts.store.setClientRef(readerId, clientRef, this.opts.clock.now()));
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

  private track(w: Awaitable<void>): void {
    if (!isPromiseLike(w)) return;
    const p = w.catch((err: unknown) => {
      this.failed.push(err as Error);
      this.log.error({ err }, 'reader registry write failed');
    });
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  /** A change another instance made (shared directory): the effects `revokeReader`/`setPassword` have here. */
  private changedElsewhere(before: ReaderRecord | undefined, after: ReaderRecord): void {
    const id = after.readerId;
    if (before && before.passwordHash !== after.passwordHash) {
      this.verifier.forget(id);
      this.opts.onPasswordChanged?.(id);
    }
    if (after.revokedAt !== null && before?.revokedAt === null) {
      this.verifier.forget(id);
      this.log.info({ readerId: id }, 'reader revoked on another instance');
      this.opts.onRevokedElsewhere?.(id);
    }
  }

  private require(readerId: string): ReaderRecord {
    const r = this.opts.store.getReader(readerId);
    if (!r) throw new Error(`unknown reader ${readerId}`);
    return r;
  }
}
