import type pino from 'pino';
import {
  gatewayPin,
  isSafeId,
  normalizeEnrollmentCode,
  splitEnrollmentCode,
  SCHEMA_VERSION,
  type Clock,
  type ProvisionError,
  type ProvisionErrorCode,
  type ProvisionResponse,
} from '../../../protocol/index.js';
import { GatewayCardKeys, type CardScheme } from '../../../protocol/index.js';
import { generateReaderPassword } from '../broker/credentials.js';
import type { ReaderRegistry } from '../registry.js';
import type { EnrollmentRow, EnrollmentStore } from '../store/ports.js';
import { cryptoRandom, formatCode, generateCode, hashCode, isWellFormed, type CodeRandom } from './codes.js';
import { DEFAULT_GUESS_LIMITS, GuessLimiter, type GuessLimitSettings } from './rate-limit.js';

export interface EnrollmentOptions {
  /** The enrollments table (store port; SQLite or PostgreSQL). */
  store: EnrollmentStore;
  clock: Clock;
  logger: pino.Logger;
  registry: Pick<ReaderRegistry, 'addReader' | 'setPassword' | 'restoreReader' | 'moveReader' | 'getReader'>;
  /** Key for the code hashes (a key file in dataDir). */
  hashKey: Buffer;
  fleetKey: string;
  /** The broker URL a device should use, given the Host header it reached us with. */
  brokerUrl: (hostHeader: string | undefined) => string;
  /**
   * SHA-256 of the admin server's certificate key (HTTPS): each code then ends with a pin of it, which
   * the reader checks before it sends the code. Absent: plain HTTP, codes without a pin.
   */
  gatewayKeySha256?: Buffer | null;
  /** PEM CA for the broker's certificate, delivered with the credentials (absent: system CAs). */
  brokerCa?: string | null;
  defaultTtlMs?: number;
  limits?: GuessLimitSettings;
  codeRandom?: CodeRandom;
  /**
   * The reader accounts on an external broker (Mosquitto's dynamic security, broker/dynsec.ts): each
   * exchange creates or re-keys the reader's broker account with the password it hands out (and enables
   * it), so the reader can log in there. Absent: the embedded broker checks the registry itself.
   */
  brokerAccounts?: { upsertReader(readerId: string, password: string): Promise<void> };
  /**
   * Called once a code issued with `replaces` was exchanged and the new reader's credentials exist:
   * retires the old reader (gateway/src/fleet/replace.ts). A throw is logged; the exchange stands.
   */
  onReplaced?: (oldReaderId: string, newReaderId: string) => void | Promise<void>;
}

export interface IssueInput {
  clientRef: string | null;
  label?: string;
  /** Re-enroll this existing reader (new credentials, same id: its history and journal stay valid). */
  readerId?: string;
  /** The code provisions a new reader id that replaces this reader (retired at the exchange). */
  replaces?: string;
  ttlMs?: number;
}

export interface IssuedCode {
  code: string;
  readerId: string;
  clientRef: string | null;
  label: string | null;
  expiresAtMs: number;
  replacesCredentials: boolean;
  /** The reader this code's new reader replaces (null: not a replacement). */
  replaces: string | null;
}

export interface EnrollmentRecord {
  readerId: string;
  clientRef: string | null;
  label: string | null;
  createdAtMs: number;
  expiresAtMs: number;
  usedAtMs: number | null;
  state: 'pending' | 'used' | 'expired';
  replaces: string | null;
}

export type ExchangeResult =
  { ok: true; status: 200; body: ProvisionResponse } | { ok: false; status: number; body: ProvisionError };

const HTTP: Record<ProvisionErrorCode, number> = {
  'invalid-code': 404,
  'expired-code': 410,
  'used-code': 409,
  'rate-limited': 429,
  'bad-request': 400,
  unavailable: 503,
};

const FIX: Record<ProvisionErrorCode, string> = {
  'invalid-code':
    'check the code for typos (letters and digits, dashes optional); if it still fails, ask the coordinator for a new code',
  'expired-code':
    'ask the coordinator for a new code (visittag-gateway readers enroll ...); codes last 1 hour',
  'used-code':
    'each code works once; if this reader was not provisioned with it, ask the coordinator to revoke that reader and issue a new code',
  'rate-limited': 'wait and try again; too many wrong codes were tried',
  'bad-request': 'update the device software; the request was not understood',
  unavailable: 'try again in a minute; if it persists, the gateway operator must check the gateway logs',
};

const refuse = (error: ProvisionErrorCode, message: string, retryAfterSec?: number): ExchangeResult => ({
  ok: false,
  status: HTTP[error],
  body: {
    schemaVersion: SCHEMA_VERSION,
    error,
    message,
    fix: FIX[error],
    ...(retryAfterSec !== undefined ? { retryAfterSec } : {}),
  },
});

/** One-time enrollment codes: issue, list, exchange for reader credentials (provisioning). */
export class Enrollment {
  private readonly log: pino.Logger;
  private readonly limiter: GuessLimiter;
  private readonly rnd: CodeRandom;

  constructor(private readonly o: EnrollmentOptions) {
    this.log = o.logger.child({ module: 'enrollment' });
    this.limiter = new GuessLimiter({ clock: o.clock, limits: o.limits ?? DEFAULT_GUESS_LIMITS });
    this.rnd = o.codeRandom ?? cryptoRandom;
  }

  async issue(input: IssueInput): Promise<IssuedCode> {
    if (input.clientRef !== null && !isSafeId(input.clientRef)) {
      throw new Error('clientRef must use letters, digits, ".", "_" and "-" (≤ 64 chars)');
    }
    const ttl = input.ttlMs ?? this.o.defaultTtlMs ?? 3_600_000;
    if (!(ttl >= 60_000 && ttl <= 7 * 24 * 3_600_000)) throw new Error('ttl must be 1 minute to 7 days');
    let readerId = input.readerId;
    let replaces = false;
    const replacing = input.replaces ?? null;
    if (replacing !== null && readerId !== undefined) {
      throw new Error('a replacement gets a new reader id: give replaces or readerId, not both');
    }
    if (readerId !== undefined) {
      if (!isSafeId(readerId)) throw new Error('readerId uses unsafe characters');
      replaces = this.o.registry.getReader(readerId) !== undefined;
    } else {
      readerId = await this.newReaderId();
    }
    const now = this.o.clock.now();
    const secret = generateCode(this.rnd);
    const norm = normalizeEnrollmentCode(secret);
    // On HTTPS the code ends with the pin of the gateway's certificate key (only the secret is stored).
    const key = this.o.gatewayKeySha256;
    const code = key ? formatCode(norm + gatewayPin(norm, key)) : secret;
    // One transaction: the codes still pending for the same reader (and, for a replacement, for the
    // same old reader) are withdrawn, so only the newest works; then the new code's hash is stored.
    await this.o.store.issue({
      codeHash: hashCode(this.o.hashKey, norm),
      readerId,
      clientRef: input.clientRef,
      label: input.label ?? null,
      createdAtMs: now,
      expiresAtMs: now + ttl,
      replacesReaderId: replacing,
    });
    this.log.info(
      { readerId, clientRef: input.clientRef, expiresAtMs: now + ttl, replaces: replacing },
      'enrollment code issued',
    );
    return {
      code,
      readerId,
      clientRef: input.clientRef,
      label: input.label ?? null,
      expiresAtMs: now + ttl,
      replacesCredentials: replaces,
      replaces: replacing,
    };
  }

  async list(): Promise<EnrollmentRecord[]> {
    const rows = await this.o.store.list(500);
    const now = this.o.clock.now();
    return rows.map((r) => ({
      readerId: r.readerId,
      clientRef: r.clientRef,
      label: r.label,
      createdAtMs: r.createdAtMs,
      expiresAtMs: r.expiresAtMs,
      usedAtMs: r.usedAtMs,
      state: r.usedAtMs !== null ? 'used' : r.expiresAtMs <= now ? 'expired' : 'pending',
      replaces: r.replacesReaderId,
    }));
  }

  /** Exchanges a code; never throws. `source` is the peer address (rate limits, audit). */
  async exchange(input: {
    code: string;
    source: string;
    preview?: boolean;
    host?: string;
    hostname?: string;
    /** What the device speaks: one offering sealed-v1 gets its own card keys and never the fleet key. */
    cardSchemes?: readonly CardScheme[];
  }): Promise<ExchangeResult> {
    const { source } = input;
    const blocked = this.limiter.blocked(source);
    if (blocked) {
      this.log.warn({ source, scope: blocked.scope }, 'provisioning refused: too many failed codes');
      return refuse('rate-limited', 'too many wrong codes were tried recently', blocked.retryAfterSec);
    }
    // A pinned code's last group is for the reader; the gateway looks up the secret only.
    const norm = splitEnrollmentCode(normalizeEnrollmentCode(input.code)).secret;
    const row = isWellFormed(norm)
      ? await this.o.store.byCodeHash(hashCode(this.o.hashKey, norm))
      : undefined;
    const now = this.o.clock.now();
    const failed = (error: ProvisionErrorCode, message: string, readerId?: string): ExchangeResult => {
      const failures = this.limiter.fail(source);
      this.log.warn({ source, reason: error, failures, readerId }, 'provisioning refused');
      return refuse(error, message);
    };
    if (!row) return failed('invalid-code', 'this code is not known to the gateway');
    if (row.usedAtMs !== null) {
      return failed('used-code', 'this code was already used', row.readerId);
    }
    if (row.expiresAtMs <= now) {
      return failed('expired-code', 'this code has expired', row.readerId);
    }
    const identity = {
      schemaVersion: SCHEMA_VERSION,
      readerId: row.readerId,
      clientRef: row.clientRef,
      label: row.label,
      issuedAt: now,
    } as const;
    if (input.preview) {
      return {
        ok: true,
        status: 200,
        body: { ...identity, preview: true, mqttUrl: this.o.brokerUrl(input.host) },
      };
    }
    // One conditional write: of two exchanges of the same code (two instances, too) exactly one wins.
    const claimed = await this.o.store.claim(row.id, now, source.slice(0, 100));
    if (!claimed) return failed('used-code', 'this code was already used', row.readerId);
    let password: string;
    try {
      password = await this.credentials(row);
    } catch (err) {
      try {
        await this.o.store.unclaim(row.id);
      } catch (e) {
        this.log.error({ err: e, readerId: row.readerId }, 'the code stays used: issue a new one');
      }
      this.log.error({ err, readerId: row.readerId }, 'provisioning failed while creating credentials');
      return refuse('unavailable', 'the gateway could not create the reader credentials');
    }
    this.log.info(
      {
        readerId: row.readerId,
        clientRef: row.clientRef,
        source,
        hostname: input.hostname,
        replaces: row.replacesReaderId,
      },
      'reader provisioned',
    );
    if (row.replacesReaderId !== null) {
      try {
        await this.o.onReplaced?.(row.replacesReaderId, row.readerId);
      } catch (err) {
        this.log.error(
          { err, readerId: row.readerId, replaces: row.replacesReaderId },
          'new reader provisioned but the old one was not retired: revoke it by hand (readers revoke)',
        );
      }
    }
    return {
      ok: true,
      status: 200,
      body: {
        ...identity,
        preview: false,
        mqtt: {
          url: this.o.brokerUrl(input.host),
          username: row.readerId,
          password,
          ...(this.o.brokerCa ? { ca: this.o.brokerCa } : {}),
        },
        ...(input.cardSchemes?.includes('sealed-v1')
          ? { cardKeys: new GatewayCardKeys(this.o.fleetKey).readerCardKeys(row.readerId) }
          : { fleetKey: this.o.fleetKey }),
      },
    };
  }

  private async credentials(row: EnrollmentRow): Promise<string> {
    const password = await this.registryCredentials(row);
    // After the registry: a broker failure leaves the reader registered and the code unclaimed, so the
    // next exchange of the same code re-keys it (registry and broker) and succeeds.
    await this.o.brokerAccounts?.upsertReader(row.readerId, password);
    return password;
  }

  private async registryCredentials(row: EnrollmentRow): Promise<string> {
    const reg = this.o.registry;
    const existing = reg.getReader(row.readerId);
    if (!existing) {
      const r = await reg.addReader({
        readerId: row.readerId,
        clientRef: row.clientRef,
        ...(row.label ? { label: row.label } : {}),
      });
      return r.password;
    }
    // Re-enrollment: same id, new password (the old one stops working), un-revoked, right client.
    const password = generateReaderPassword();
    await reg.setPassword(row.readerId, password);
    if (existing.revokedAt !== null) reg.restoreReader(row.readerId);
    if (existing.clientRef !== row.clientRef) reg.moveReader(row.readerId, row.clientRef);
    return password;
  }

  private async newReaderId(): Promise<string> {
    const alphabet = 'bcdfghjkmnpqrstvwxz23456789'; // no vowels: no accidental words
    for (let attempt = 0; attempt < 20; attempt++) {
      let id = 'rdr-';
      for (let i = 0; i < 8; i++) id += alphabet[this.rnd(alphabet.length)];
      if (!this.o.registry.getReader(id) && !(await this.o.store.readerIdTaken(id))) return id;
    }
    throw new Error('could not find a free reader id');
  }
}
