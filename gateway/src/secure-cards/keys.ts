/**
 * The secure-card master key (issue 18). Kept in its own file, never in the config and never in a log:
 * the gateway refuses to start when the file can be read by anyone but its owner (mode 0600 or tighter).
 * From the master key the gateway derives what it needs (AN10922): the fleet-wide SDM meta read key
 * (key 2) to decrypt the UID and counter, and each card's SDM file read key (key 1) to check its MAC.
 * Optionally a second, separate master: the DESFire application read key (`desfireKey`), which readers
 * hold too (they authenticate DESFire cards with it); kept apart so a stolen reader says nothing about
 * the NTAG 424 DNA keys.
 */
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import {
  cardKey,
  sharedCardKey,
  verifyDesfireTranscript,
  type DesfireTranscript,
} from '../../../protocol/index.js';

const KeyFile = z
  .object({
    version: z.literal(1).describe('Key file format version.'),
    masterKey: z
      .string()
      .regex(/^[0-9a-fA-F]{32}$/, 'must be 32 hex characters (an AES-128 key)')
      .describe('The fleet master key the card keys are derived from (AN10922).'),
    desfireKey: z
      .string()
      .regex(/^[0-9a-fA-F]{32}$/, 'must be 32 hex characters (an AES-128 key)')
      .optional()
      .describe('DESFire application read-key master (AN10922, per card); the same as on the readers.'),
    desfireKeyNo: z
      .number()
      .int()
      .min(1)
      .max(13)
      .default(1)
      .describe('The application key number readers authenticate with (never 0, the application master).'),
  })
  .strict();

export class SecureKeyError extends Error {}

/** The keys the gateway verifies SUN messages with. Prints as "[redacted]". */
export class SecureCardKeys {
  readonly metaReadKey: Buffer;
  readonly #master: Buffer;
  readonly #desfire: { master: Buffer; keyNo: number } | null;

  constructor(masterKey: Buffer, desfire?: { key: Buffer; keyNo: number }) {
    if (masterKey.length !== 16) throw new SecureKeyError('the master key must be 16 bytes');
    this.#master = Buffer.from(masterKey);
    this.metaReadKey = sharedCardKey(this.#master, 2);
    if (desfire && desfire.key.length !== 16) throw new SecureKeyError('the DESFire key must be 16 bytes');
    this.#desfire = desfire ? { master: Buffer.from(desfire.key), keyNo: desfire.keyNo } : null;
  }

  /** The application key number DESFire proofs must use; null when no DESFire key is configured. */
  get desfireKeyNo(): number | null {
    return this.#desfire?.keyNo ?? null;
  }

  /** Checks a DESFire transcript (null: no DESFire key configured). */
  verifyDesfire(t: DesfireTranscript): ReturnType<typeof verifyDesfireTranscript> | null {
    return this.#desfire ? verifyDesfireTranscript(t, this.#desfire.master) : null;
  }

  fileReadKeyFor(uid: Uint8Array): Buffer {
    return cardKey(this.#master, uid, 1);
  }

  toJSON(): string {
    return '[redacted]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'SecureCardKeys [redacted]';
  }
}

/**
 * Reads the key file. Refuses (with the fix) a file others can read or write, a file that is not
 * a regular file, and malformed contents; the error never contains the key.
 */
export function loadSecureKeyFile(path: string): SecureCardKeys {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new SecureKeyError(
      `secure-card key file ${path} cannot be read. Fix: create it (docs/secure-cards.md "Keys") or remove secureCards from the config`,
    );
  }
  if (!st.isFile()) throw new SecureKeyError(`secure-card key file ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new SecureKeyError(
      `secure-card key file ${path} has mode ${(st.mode & 0o777).toString(8)}: group or others can read it. Fix: chmod 600 ${path}`,
    );
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new SecureKeyError(
      `secure-card key file ${path} belongs to another user (uid ${st.uid}). Fix: chown it to the user the gateway runs as`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new SecureKeyError(
      `secure-card key file ${path} is not JSON. Fix: {"version":1,"masterKey":"<32 hex>"}`,
    );
  }
  const r = KeyFile.safeParse(json);
  if (!r.success) {
    const where = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new SecureKeyError(
      `secure-card key file ${path}: ${where}. Fix: {"version":1,"masterKey":"<32 hex>"}`,
    );
  }
  const d = r.data.desfireKey;
  return new SecureCardKeys(
    Buffer.from(r.data.masterKey, 'hex'),
    d ? { key: Buffer.from(d, 'hex'), keyNo: r.data.desfireKeyNo } : undefined,
  );
}
