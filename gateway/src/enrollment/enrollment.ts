import type pino from 'pino';
import {
  isSafeId,
  normalizeEnrollmentCode,
  SCHEMA_VERSION,
  type Clock,
  type ProvisionError,
  type ProvisionErrorCode,
  type ProvisionResponse,
} from '../../../protocol/index.js';
import { generateReaderPassword } from '../broker/credentials.js';
import type { ReaderRegistry } from '../registry.js';
import type { Db } from '../store/sqlite/db.js';
import { cryptoRandom, generateCode, hashCode, isWellFormed, type CodeRandom } from './codes.js';
import { DEFAULT_GUESS_LIMITS, GuessLimiter, type GuessLimitSettings } from './rate-limit.js';

export interface EnrollmentOptions {
  db: Db;
  clock: Clock;
  logger: pino.Logger;
  registry: Pick<ReaderRegistry, 'addReader' | 'setPassword' | 'restoreReader' | 'moveReader' | 'getReader'>;
  /** Key for the code hashes (a key file in dataDir). */
  hashKey: Buffer;
  fleetKey: string;
  /** The broker URL a device should use, given the Host header it reached us with. */
  brokerUrl: (hostHeader: string | undefined) => string;
  defaultTtlMs?: number;
  limits?: GuessLimitSettings;
  codeRandom?: CodeRandom;
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

interface Row {
  id: number;
  reader_id: string;
  client_ref: string | null;
  label: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  replaces_reader_id: string | null;
}

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

  issue(input: IssueInput): IssuedCode {
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
      readerId = this.newReaderId();
    }
    const now = this.o.clock.now();
    const code = generateCode(this.rnd);
    const norm = normalizeEnrollmentCode(code);
    // A code still pending for the same reader is withdrawn: only the newest works.
    this.o.db
      .prepare(
        'UPDATE enrollments SET expires_at = ? WHERE reader_id = ? AND used_at IS NULL AND expires_at > ?',
      )
      .run(now, readerId, now);
    if (replacing !== null) {
      // Likewise a pending replacement code for the same old reader: one replacement at a time.
      this.o.db
        .prepare(
          'UPDATE enrollments SET expires_at = ? WHERE replaces_reader_id = ? AND used_at IS NULL AND expires_at > ?',
        )
        .run(now, replacing, now);
    }
    this.o.db
      .prepare(
        `INSERT INTO enrollments (code_hash, reader_id, client_ref, label, created_at, expires_at, replaces_reader_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        hashCode(this.o.hashKey, norm),
        readerId,
        input.clientRef,
        input.label ?? null,
        now,
        now + ttl,
        replacing,
      );
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

  list(): EnrollmentRecord[] {
    const now = this.o.clock.now();
    const rows = this.o.db.prepare('SELECT * FROM enrollments ORDER BY id DESC LIMIT 500').all() as Row[];
    return rows.map((r) => ({
      readerId: r.reader_id,
      clientRef: r.client_ref,
      label: r.label,
      createdAtMs: r.created_at,
      expiresAtMs: r.expires_at,
      usedAtMs: r.used_at,
      state: r.used_at !== null ? 'used' : r.expires_at <= now ? 'expired' : 'pending',
      replaces: r.replaces_reader_id,
    }));
  }

  /** Exchanges a code; never throws. `source` is the peer address (rate limits, audit). */
  async exchange(input: {
    code: string;
    source: string;
    preview?: boolean;
    host?: string;
    hostname?: string;
  }): Promise<ExchangeResult> {
    const { source } = input;
    const blocked = this.limiter.blocked(source);
    if (blocked) {
      this.log.warn({ source, scope: blocked.scope }, 'provisioning refused: too many failed codes');
      return refuse('rate-limited', 'too many wrong codes were tried recently', blocked.retryAfterSec);
    }
    const norm = normalizeEnrollmentCode(input.code);
    const row = isWellFormed(norm)
      ? (this.o.db
          .prepare('SELECT * FROM enrollments WHERE code_hash = ?')
          .get(hashCode(this.o.hashKey, norm)) as Row | undefined)
      : undefined;
    const now = this.o.clock.now();
    const failed = (error: ProvisionErrorCode, message: string, readerId?: string): ExchangeResult => {
      const failures = this.limiter.fail(source);
      this.log.warn({ source, reason: error, failures, readerId }, 'provisioning refused');
      return refuse(error, message);
    };
    if (!row) return failed('invalid-code', 'this code is not known to the gateway');
    if (row.used_at !== null) {
      return failed('used-code', 'this code was already used', row.reader_id);
    }
    if (row.expires_at <= now) {
      return failed('expired-code', 'this code has expired', row.reader_id);
    }
    const identity = {
      schemaVersion: SCHEMA_VERSION,
      readerId: row.reader_id,
      clientRef: row.client_ref,
      label: row.label,
      issuedAt: now,
    } as const;
    if (input.preview) return { ok: true, status: 200, body: { ...identity, preview: true } };
    const claim = this.o.db
      .prepare('UPDATE enrollments SET used_at = ?, used_from = ? WHERE id = ? AND used_at IS NULL')
      .run(now, source.slice(0, 100), row.id);
    if (claim.changes !== 1) return failed('used-code', 'this code was already used', row.reader_id);
    let password: string;
    try {
      password = await this.credentials(row);
    } catch (err) {
      this.o.db.prepare('UPDATE enrollments SET used_at = NULL, used_from = NULL WHERE id = ?').run(row.id);
      this.log.error({ err, readerId: row.reader_id }, 'provisioning failed while creating credentials');
      return refuse('unavailable', 'the gateway could not create the reader credentials');
    }
    this.log.info(
      {
        readerId: row.reader_id,
        clientRef: row.client_ref,
        source,
        hostname: input.hostname,
        replaces: row.replaces_reader_id,
      },
      'reader provisioned',
    );
    if (row.replaces_reader_id !== null) {
      try {
        await this.o.onReplaced?.(row.replaces_reader_id, row.reader_id);
      } catch (err) {
        this.log.error(
          { err, readerId: row.reader_id, replaces: row.replaces_reader_id },
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
        mqtt: { url: this.o.brokerUrl(input.host), username: row.reader_id, password },
        fleetKey: this.o.fleetKey,
      },
    };
  }

  private async credentials(row: Row): Promise<string> {
    const reg = this.o.registry;
    const existing = reg.getReader(row.reader_id);
    if (!existing) {
      const r = await reg.addReader({
        readerId: row.reader_id,
        clientRef: row.client_ref,
        ...(row.label ? { label: row.label } : {}),
      });
      return r.password;
    }
    // Re-enrollment: same id, new password (the old one stops working), un-revoked, right client.
    const password = generateReaderPassword();
    await reg.setPassword(row.reader_id, password);
    if (existing.revokedAt !== null) reg.restoreReader(row.reader_id);
    if (existing.clientRef !== row.client_ref) reg.moveReader(row.reader_id, row.client_ref);
    return password;
  }

  private newReaderId(): string {
    const alphabet = 'bcdfghjkmnpqrstvwxz23456789'; // no vowels: no accidental words
    for (let attempt = 0; attempt < 20; attempt++) {
      let id = 'rdr-';
      for (let i = 0; i < 8; i++) id += alphabet[this.rnd(alphabet.length)];
      const pending = this.o.db.prepare('SELECT 1 FROM enrollments WHERE reader_id = ?').get(id);
      if (!pending && !this.o.registry.getReader(id)) return id;
    }
    throw new Error('could not find a free reader id');
  }
}
