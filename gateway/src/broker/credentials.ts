import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Reader credentials: scrypt hashes at rest, self-describing (`scrypt$logN$r$p$salt$hash`) so the
 * cost can be raised later without invalidating stored hashes.
 *
 * Trade-off (gateway/README.md "Credentials"): reader passwords are machine-generated 256-bit
 * tokens (`generateReaderPassword`), so the KDF's job is only to make a stolen gateway.db useless
 * for guessing short, human-chosen passwords; it cannot add anything to a 256-bit secret. The default
 * logN=11 (2 MiB, ≈ 2–4 ms per hash here) lets a restarted gateway re-authenticate 10,000 readers
 * within the benchmark's 60 s on 2 cores; logN=14 would take ≈ 5 min of CPU for the same storm.
 * Successful verifications are cached in memory (keyed HMAC of the password under a per-process
 * random key, never the password itself), so reconnects within one process cost no KDF at all.
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

/**
 * Verifies credentials with a memory cache of successful checks and a bound on concurrent KDF runs
 * (the rest queue, so a reconnect storm cannot starve the libuv pool used by other I/O).
 */
export class CredentialVerifier {
  private readonly cacheKey = randomBytes(32);
  private readonly verified = new Map<string, { hash: string; tag: Buffer }>();
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly maxConcurrent: number;

  constructor(opts: { maxConcurrent?: number } = {}) {
    this.maxConcurrent = opts.maxConcurrent ?? 2;
  }

  private tag(readerId: string, password: string): Buffer {
    return createHmac('sha256', this.cacheKey).update(readerId).update('\0').update(password).digest();
  }

  /** `storedHash` is the current hash from the store: a changed hash invalidates the cache entry. */
  async verify(readerId: string, password: string, storedHash: string): Promise<boolean> {
    const tag = this.tag(readerId, password);
    const hit = this.verified.get(readerId);
    if (hit && hit.hash === storedHash && timingSafeEqual(hit.tag, tag)) return true;
    await this.acquire();
    try {
      const ok = await verifyPassword(password, storedHash);
      if (ok) this.verified.set(readerId, { hash: storedHash, tag });
      return ok;
    } finally {
      this.release();
    }
  }

  forget(readerId: string): void {
    this.verified.delete(readerId);
  }

  get cached(): number {
    return this.verified.size;
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
