/**
 * NTAG 424 DNA Secure Unique NFC (SUN) messages per NXP AN12196 (AES mode):
 * - PICCData = AES-128-CBC-decrypt(SDMMetaReadKey, IV = 0, PICCENCData) = PICCDataTag || UID || SDMReadCtr
 *   (counter 3 bytes, LSB first) || random padding.
 * - Session keys from SDMFileReadKey: SV1 = C3 3C 00 01 00 80 || UID || SDMReadCtr (ENC),
 *   SV2 = 3C C3 00 01 00 80 || UID || SDMReadCtr (MAC); SesKey = CMAC(SDMFileReadKey, SV).
 * - SDMMAC = the odd bytes of CMAC(SesSDMFileReadMACKey, data from SDMMACInputOffset to SDMMACOffset).
 */
import { randomBytes } from 'node:crypto';
import { aesCbcDecrypt, aesCbcEncrypt, aesCmac, macEquals, truncateMac } from './aes.js';

const ZERO_IV = Buffer.alloc(16);
/** Largest SDMReadCtr (24 bits). A card at this value refuses further SDM reads. */
export const SDM_COUNTER_MAX = 0xffffff;

export interface PiccData {
  /** PICCDataTag: bit 7 UID mirrored, bit 6 counter mirrored, bits 3..0 UID length. */
  tag: number;
  /** The card UID (7 bytes on NTAG 424 DNA). */
  uid: Buffer;
  /** SDMReadCtr. */
  counter: number;
}

export type PiccDecryptResult = { ok: true; value: PiccData } | { ok: false; reason: string };

/** Decrypts and parses PICCENCData (16 bytes). A wrong meta read key shows as a tag that makes no sense. */
export function decryptPiccData(metaReadKey: Uint8Array, piccEnc: Uint8Array): PiccDecryptResult {
  if (piccEnc.length !== 16)
    return { ok: false, reason: `PICCENCData must be 16 bytes, got ${piccEnc.length}` };
  const plain = aesCbcDecrypt(metaReadKey, ZERO_IV, piccEnc);
  const tag = plain[0] as number;
  const uidLen = tag & 0x0f;
  if ((tag & 0x80) === 0 || (tag & 0x40) === 0 || uidLen !== 7 || (tag & 0x30) !== 0) {
    return {
      ok: false,
      reason:
        'PICCData does not decrypt to a UID and counter (wrong SDM meta read key, or SDM not set to mirror both)',
    };
  }
  const uid = Buffer.from(plain.subarray(1, 8));
  const counter = plain.readUIntLE(8, 3);
  return { ok: true, value: { tag, uid, counter } };
}

/** PICCENCData as the card makes it (the virtual card and tests): tag C7, UID, counter, random padding. */
export function encryptPiccData(
  metaReadKey: Uint8Array,
  uid: Uint8Array,
  counter: number,
  pad: Uint8Array = randomBytes(5),
): Buffer {
  if (uid.length !== 7) throw new Error('NTAG 424 DNA UIDs are 7 bytes');
  const plain = Buffer.alloc(16);
  plain[0] = 0xc7;
  Buffer.from(uid).copy(plain, 1);
  plain.writeUIntLE(counter, 8, 3);
  Buffer.from(pad.subarray(0, 5)).copy(plain, 11);
  return aesCbcEncrypt(metaReadKey, ZERO_IV, plain);
}

function sessionVector(prefix: number[], uid: Uint8Array, counter: number): Buffer {
  const ctr = Buffer.alloc(3);
  ctr.writeUIntLE(counter, 0, 3);
  const sv = Buffer.concat([Buffer.from(prefix), uid, ctr]);
  // UID (7) + counter (3) + 6 fill exactly one block; shorter UIDs are zero padded to a block.
  const out = Buffer.alloc(Math.ceil(sv.length / 16) * 16);
  sv.copy(out);
  return out;
}

/** SesSDMFileReadMACKey (SV2) and SesSDMFileReadENCKey (SV1). */
export function sdmSessionKeys(
  fileReadKey: Uint8Array,
  uid: Uint8Array,
  counter: number,
): { mac: Buffer; enc: Buffer } {
  return {
    enc: aesCmac(fileReadKey, sessionVector([0xc3, 0x3c, 0x00, 0x01, 0x00, 0x80], uid, counter)),
    mac: aesCmac(fileReadKey, sessionVector([0x3c, 0xc3, 0x00, 0x01, 0x00, 0x80], uid, counter)),
  };
}

/** The 8-byte SDMMAC over `macInput` (empty when SDMMACInputOffset = SDMMACOffset). */
export function sdmMac(
  fileReadKey: Uint8Array,
  uid: Uint8Array,
  counter: number,
  macInput: Uint8Array = Buffer.alloc(0),
): Buffer {
  const { mac } = sdmSessionKeys(fileReadKey, uid, counter);
  return truncateMac(aesCmac(mac, macInput));
}

/** Decrypts SDMENCFileData: IV = E(SesSDMFileReadENCKey, SDMReadCtr || 0^13), AES-CBC. */
export function decryptSdmFileData(
  fileReadKey: Uint8Array,
  uid: Uint8Array,
  counter: number,
  encFileData: Uint8Array,
): Buffer {
  const { enc } = sdmSessionKeys(fileReadKey, uid, counter);
  const ivIn = Buffer.alloc(16);
  ivIn.writeUIntLE(counter, 0, 3);
  const iv = aesCbcEncrypt(enc, ZERO_IV, ivIn);
  return aesCbcDecrypt(enc, iv, encFileData);
}

export type SunVerifyResult =
  | { ok: true; uid: Buffer; counter: number }
  | { ok: false; code: 'bad-picc-data' | 'bad-mac'; reason: string };

/**
 * Verifies one SUN message: decrypts PICCData with the meta read key, derives the card's file read
 * key from the UID (`fileReadKeyFor`), checks the SDMMAC in constant time.
 */
export function verifySun(
  msg: { piccEnc: Uint8Array; mac: Uint8Array; macInput?: Uint8Array },
  keys: { metaReadKey: Uint8Array; fileReadKeyFor: (uid: Buffer) => Uint8Array },
): SunVerifyResult {
  const picc = decryptPiccData(keys.metaReadKey, msg.piccEnc);
  if (!picc.ok) return { ok: false, code: 'bad-picc-data', reason: picc.reason };
  const { uid, counter } = picc.value;
  const expected = sdmMac(keys.fileReadKeyFor(uid), uid, counter, msg.macInput);
  if (!macEquals(expected, Buffer.from(msg.mac))) {
    return {
      ok: false,
      code: 'bad-mac',
      reason:
        'SDMMAC does not verify (the card holds other keys than this master key derives, or the message was altered)',
    };
  }
  return { ok: true, uid, counter };
}
