/**
 * Key files. The card office's master key file for personalisation: JSON {"version":1,"masterKey":"<32 hex>"},
 * mode 0600. Read for one personalisation run and never stored on the reader (a deployed reader
 * holds no master key: docs/secure-cards.md). Errors name the fix and never contain the key.
 */
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';

const KeyFile = z
  .object({
    version: z.literal(1),
    masterKey: z.string().regex(/^[0-9a-fA-F]{32}$/, 'must be 32 hex characters'),
  })
  .strict();

export class KeyFileError extends Error {}

export function readMasterKeyFile(path: string): Buffer {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    throw new KeyFileError(`master key file ${path} cannot be read. Fix: give the card office's key file`);
  }
  if ((mode & 0o077) !== 0)
    throw new KeyFileError(
      `master key file ${path} has mode ${(mode & 0o777).toString(8)}: group or others can read it. Fix: chmod 600 ${path}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new KeyFileError(`master key file ${path} is not JSON. Fix: {"version":1,"masterKey":"<32 hex>"}`);
  }
  const r = KeyFile.safeParse(json);
  if (!r.success)
    throw new KeyFileError(
      `master key file ${path}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  return Buffer.from(r.data.masterKey, 'hex');
}

const DesfireKeyFile = z
  .object({
    version: z.literal(1),
    desfireKey: z.string().regex(/^[0-9a-fA-F]{32}$/, 'must be 32 hex characters'),
  })
  .strict();

/**
 * A reader's DESFire read-key file (issue 18): JSON {"version":1,"desfireKey":"<32 hex>"}, mode 0600,
 * the fleet's DESFire application read-key master (the gateway's `desfireKey`). This one key does sit
 * on every reader that authenticates DESFire cards: docs/secure-cards.md says what a stolen reader
 * reveals and how to limit it. Errors name the fix and never contain the key.
 */
export function readDesfireKeyFile(path: string): Buffer {
  const fix = 'Fix: {"version":1,"desfireKey":"<32 hex>"} (the gateway key file\'s desfireKey), chmod 600';
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new KeyFileError(`DESFire key file ${path} cannot be read. ${fix}, or remove reader.desfire`);
  }
  if (!st.isFile()) throw new KeyFileError(`DESFire key file ${path} is not a regular file. ${fix}`);
  if ((st.mode & 0o077) !== 0)
    throw new KeyFileError(
      `DESFire key file ${path} has mode ${(st.mode & 0o777).toString(8)}: group or others can read it. Fix: chmod 600 ${path}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new KeyFileError(`DESFire key file ${path} is not JSON. ${fix}`);
  }
  const r = DesfireKeyFile.safeParse(json);
  if (!r.success)
    throw new KeyFileError(
      `DESFire key file ${path}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}. ${fix}`,
    );
  return Buffer.from(r.data.desfireKey, 'hex');
}
