/**
 * AES-128 building blocks for the secure cards (NTAG 424 DNA, MIFARE DESFire EV2/EV3): raw ECB/CBC
 * without padding (node:crypto), AES-CMAC (NIST SP 800-38B / RFC 4493) and NXP's MAC truncation.
 * Pure computation, no I/O.
 */
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto';

export const AES_BLOCK = 16;
const ZERO_IV = Buffer.alloc(AES_BLOCK);

function checkKey(key: Uint8Array): void {
  if (key.length !== 16) throw new Error(`AES-128 key must be 16 bytes, got ${key.length}`);
}

function checkBlocks(data: Uint8Array, what: string): void {
  if (data.length % AES_BLOCK !== 0)
    throw new Error(`${what} must be a multiple of 16 bytes, got ${data.length}`);
}

/** AES-128-CBC encryption without padding (the caller pads). */
export function aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  checkKey(key);
  checkBlocks(data, 'CBC plaintext');
  const c = createCipheriv('aes-128-cbc', key, iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

/** AES-128-CBC decryption without padding. */
export function aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Buffer {
  checkKey(key);
  checkBlocks(data, 'CBC ciphertext');
  const d = createDecipheriv('aes-128-cbc', key, iv);
  d.setAutoPadding(false);
  return Buffer.concat([d.update(data), d.final()]);
}

/** One AES-128 block encryption (ECB). */
export function aesEncryptBlock(key: Uint8Array, block: Uint8Array): Buffer {
  return aesCbcEncrypt(key, ZERO_IV, block);
}

/** Left shift of a 16-byte block by one bit; XOR with Rb (0x87) when the top bit fell out. */
function dbl(block: Buffer): Buffer {
  const out = Buffer.alloc(AES_BLOCK);
  for (let i = 0; i < AES_BLOCK; i++) {
    const next = i + 1 < AES_BLOCK ? (block[i + 1] as number) : 0;
    out[i] = (((block[i] as number) << 1) | (next >>> 7)) & 0xff;
  }
  if (((block[0] as number) & 0x80) !== 0) out[AES_BLOCK - 1] = (out[AES_BLOCK - 1] as number) ^ 0x87;
  return out;
}

/** CMAC subkeys K1, K2 (SP 800-38B 6.1). */
export function cmacSubkeys(key: Uint8Array): { k1: Buffer; k2: Buffer } {
  const l = aesEncryptBlock(key, ZERO_IV);
  const k1 = dbl(l);
  return { k1, k2: dbl(k1) };
}

function xorInto(a: Buffer, b: Uint8Array, at = 0): void {
  for (let i = 0; i < b.length; i++) a[at + i] = (a[at + i] as number) ^ (b[i] as number);
}

/**
 * CMAC over `msg` with the last block already chosen: complete blocks end with K1, a padded last
 * block (80 00 ...) with K2. `padTo` forces padding up to that many bytes (AN10922 pads to 32).
 */
function cmacWith(key: Uint8Array, msg: Uint8Array, padTo?: number): Buffer {
  const { k1, k2 } = cmacSubkeys(key);
  let data: Buffer;
  let sub: Buffer;
  const target = padTo ?? (msg.length === 0 ? AES_BLOCK : Math.ceil(msg.length / AES_BLOCK) * AES_BLOCK);
  if (msg.length > 0 && msg.length === target) {
    data = Buffer.from(msg);
    sub = k1;
  } else {
    data = Buffer.alloc(target);
    Buffer.from(msg).copy(data);
    data[msg.length] = 0x80;
    sub = k2;
  }
  xorInto(data, sub, data.length - AES_BLOCK);
  const enc = aesCbcEncrypt(key, ZERO_IV, data);
  return enc.subarray(enc.length - AES_BLOCK);
}

/** AES-CMAC (RFC 4493): the full 16-byte tag. */
export function aesCmac(key: Uint8Array, msg: Uint8Array): Buffer {
  return cmacWith(key, msg);
}

/** AES-CMAC with padding forced to `padTo` bytes (AN10922 key diversification). */
export function aesCmacPadded(key: Uint8Array, msg: Uint8Array, padTo: number): Buffer {
  if (msg.length > padTo || padTo % AES_BLOCK !== 0) throw new Error('bad CMAC padding target');
  return cmacWith(key, msg, padTo);
}

/** NXP's 8-byte MAC truncation: the odd-numbered bytes (1, 3, ..., 15) of the 16-byte CMAC. */
export function truncateMac(full: Uint8Array): Buffer {
  const out = Buffer.alloc(8);
  for (let i = 0; i < 8; i++) out[i] = full[2 * i + 1] as number;
  return out;
}

/** Constant-time comparison of two MACs. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** ISO/IEC 9797-1 padding method 2 (80 00 ...), always at least one byte. */
export function padM2(data: Uint8Array): Buffer {
  const len = (Math.floor(data.length / AES_BLOCK) + 1) * AES_BLOCK;
  const out = Buffer.alloc(len);
  Buffer.from(data).copy(out);
  out[data.length] = 0x80;
  return out;
}

/** Strips ISO/IEC 9797-1 padding method 2; null when the padding is malformed. */
export function unpadM2(data: Uint8Array): Buffer | null {
  for (let i = data.length - 1; i >= 0; i--) {
    if (data[i] === 0x80) return Buffer.from(data.subarray(0, i));
    if (data[i] !== 0) return null;
  }
  return null;
}

/** CRC32 (IEEE 802.3 polynomial) as DESFire/NTAG ChangeKey uses it: no final inversion, LSB first. */
export function crc32Nxp(data: Uint8Array): Buffer {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  const out = Buffer.alloc(4);
  out.writeUInt32LE(crc >>> 0, 0);
  return out;
}

/** Rotates left by one byte (RndA', RndB' of the EV2 authentication). */
export function rotl(b: Uint8Array): Buffer {
  return Buffer.concat([b.subarray(1), b.subarray(0, 1)]);
}
