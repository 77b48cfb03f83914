import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { AuthThrottle } from './limits.js';

/**
 * Reader credentials: scrypt hashes at rest, self-describing (`scrypt$logN$r$p$salt$hash`) so the
 * cost can be raised later without invalidating stored hashes.
 *
 * Trade-off (gateway/README.md "Credentials"): reader passwords are machine-generated 256-bit
 * tokens (`generateReaderPassword`), so the KDF's job is only to make a stolen gateway.db useless
 * for guessing short, human-chosen passwords; it cannot add anything to a 256-bit secret. The default
 * logN=11 (2 MiB, ≈ 2–4 ms per hash here) lets a restarted gateway re-authenticate 10,000 readers
 * within the benchmark's 60 s on 2 cores; logN=14 would take ≈ 5 min of CPU for the same storm.
 * Successful verifications are cached (CredentialVerifier below), also across restarts, so a
 * reconnect storm after a gateway restart costs no KDF at all.
 */
export interface KdfParams {
  logN: number;
  r: number;
  p: number;
}

const KEY_LEN = 32;

function scryptAsync(password: string, salt: Buffer, p: KdfParams): Promise<Buffer> {
  const N = 2 ** p.logN;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_LEN, { N, r: p.r, p: p.p, maxmem: 256 * N * p.r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, params: KdfParams): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, params);
  return `scrypt$${params.logN}$${params.r}$${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [logN, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![logN, r, p].every((n) => Number.isInteger(n) && n > 0) || logN > 22) return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64url');
  const expected = Buffer.from(parts[5] ?? '', 'base64url');
  if (expected.length !== KEY_LEN) return false;
  const got = await scryptAsync(password, salt, { logN, r, p });
  return timingSafeEqual(got, expected);
}

/** A fresh 256-bit reader password (base64url, 43 chars). */
export function generateReaderPassword(): string {
  return randomBytes(32).toString('base64url');
}

/** Refuses weak reader passwords: they are machine credentials, not memorised ones. */
export function checkPasswordStrength(password: string): string | null {
  if (password.length < 20) return 'reader passwords must be at least 20 characters (use a generated one)';
  if (password.length > 256) return 'reader passwords must be at most 256 characters';
  return null;
}

/** Where verified-credential tags persist (a table next to the hashes; the key is NOT in the DB). */
export interface AuthTagStore {
  get(readerId: string): Buffer | undefined;
  set(readerId: string, tag: Buffer): void;
  delete(readerId: string): void;
}

/**
 * Verifies credentials: a verified-credential cache first, the scrypt KDF only on a miss, with a bound
 * on concurrent KDF runs (the rest queue, so a reconnect storm cannot starve the libuv pool).
 *
 * The cache holds `HMAC-SHA256(cacheKey, readerId ‖ storedHash ‖ password)` per reader, in memory and,
 * when a tag store is given, in the database, so a restarted gateway re-admits its fleet without
 * running the KDF again. `cacheKey` lives in a separate file (`<dataDir>/auth-cache.key`, 0600), so a
 * copy of gateway.db alone (a backup, a stolen disk image of the DB) gives nothing to test guesses
 * against quickly; with the key too, an attacker could test guesses at HMAC speed, which is why reader
 * passwords must be long generated secrets (checkPasswordStrength). Binding the tag to the stored hash
 * makes a password change or re-provisioning invalidate it.
 */
export class CredentialVerifier {
  private readonly cacheKey: Buffer;
  private readonly tags?: AuthTagStore;
  private readonly memory = new Map<string, Buffer>();
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly maxConcurrent: number;
  kdfRuns = 0;

  /** Failed-login throttling (./limits.ts); every verifier has one (a default on the process clock). */
  readonly throttle: AuthThrottle;

  constructor(
    opts: { cacheKey?: Buffer; tags?: AuthTagStore; maxConcurrent?: number; throttle?: AuthThrottle } = {},
  ) {
    this.cacheKey = opts.cacheKey ?? randomBytes(32);
    this.throttle = opts.throttle ?? new AuthThrottle({ monotonic: () => performance.now() });
    if (opts.tags) this.tags = opts.tags;
    this.maxConcurrent = opts.maxConcurrent ?? 4; // libuv pool size: KDF work never queues behind more
  }

  private tag(readerId: string, password: string, storedHash: string): Buffer {
    return createHmac('sha256', this.cacheKey)
      .update(readerId)
      .update('\0')
      .update(storedHash)
      .update('\0')
      .update(password)
      .digest();
  }

  /**
   * Like `verify`, for a connection from `source` (an IP address): the cache answers first (a reader
   * that connected before is never throttled); otherwise the KDF runs only if the throttle allows it.
   */
  async check(
    readerId: string,
    password: string,
    storedHash: string,
    source: string,
  ): Promise<'ok' | 'bad-password' | 'throttled'> {
    if (this.cached(readerId, password, storedHash)) return 'ok';
    if (!this.throttle.allow(source, readerId)) return 'throttled';
    const ok = await this.verify(readerId, password, storedHash);
    this.throttle.result(source, readerId, ok);
    return ok ? 'ok' : 'bad-password';
  }

  private cached(readerId: string, password: string, storedHash: string): boolean {
    const tag = this.tag(readerId, password, storedHash);
    const known = this.memory.get(readerId) ?? this.tags?.get(readerId);
    if (known && known.length === tag.length && timingSafeEqual(known, tag)) {
      this.memory.set(readerId, known);
      return true;
    }
    return false;
  }

  /** `storedHash` is the current hash from the store: a changed hash invalidates the cached tag. */
  async verify(readerId: string, password: string, storedHash: string): Promise<boolean> {
    const tag = this.tag(readerId, password, storedHash);
    if (this.cached(readerId, password, storedHash)) return true;
    await this.acquire();
    try {
      this.kdfRuns++;
      const ok = await verifyPassword(password, storedHash);
      if (ok) {
        this.memory.set(readerId, tag);
        this.tags?.set(readerId, tag);
      }
      return ok;
    } finally {
      this.release();
    }
  }

  forget(readerId: string): void {
    this.memory.delete(readerId);
    this.tags?.delete(readerId);
  }

  private acquire(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

/** Reads `<file>` (32 random bytes), creating it with mode 0600 if missing. */
export function loadOrCreateKeyFile(file: string): Buffer {
  try {
    const k = readFileSync(file);
    if (k.length === 32) return k;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  writeFileSync(file, key, { mode: 0o600 });
  return key;
}
