/**
 * EV2 secure messaging shared by NTAG 424 DNA and MIFARE DESFire EV2/EV3 (AES mode), per the NTAG
 * 424 DNA data sheet and AN12196: AuthenticateEV2First (both sides), session keys, and commands in
 * CommMode.MAC and CommMode.Full. Pure: the caller moves the APDUs.
 */
import {
  aesCbcDecrypt,
  aesCbcEncrypt,
  aesCmac,
  crc32Nxp,
  macEquals,
  padM2,
  rotl,
  truncateMac,
  unpadM2,
} from './aes.js';

const ZERO_IV = Buffer.alloc(16);

/** Native command codes used here. */
export const EV2 = {
  AUTH_FIRST: 0x71,
  ADDITIONAL_FRAME: 0xaf,
  CHANGE_KEY: 0xc4,
  CHANGE_FILE_SETTINGS: 0x5f,
  GET_FILE_SETTINGS: 0xf5,
  SELECT_APPLICATION: 0x5a,
  GET_CARD_UID: 0x51,
} as const;

/** Status words of ISO-wrapped native commands (SW1 = 91). */
export const SW = {
  OK: 0x9100,
  MORE: 0x91af,
  AUTH_ERROR: 0x91ae,
  PERMISSION_DENIED: 0x919d,
  INTEGRITY_ERROR: 0x911e,
  LENGTH_ERROR: 0x917e,
  NO_SUCH_KEY: 0x9140,
  PARAMETER_ERROR: 0x919e,
  COMMAND_ABORTED: 0x91ca,
} as const;

/** An ISO 7816-4 wrapped native command: 90 Cmd 00 00 Lc Data 00. */
export function wrapNative(cmd: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  if (data.length === 0) return Buffer.from([0x90, cmd, 0x00, 0x00, 0x00]);
  return Buffer.concat([Buffer.from([0x90, cmd, 0x00, 0x00, data.length]), data, Buffer.from([0x00])]);
}

/** Splits a response APDU into data and status word. */
export function splitResponse(res: Uint8Array): { data: Buffer; sw: number } {
  if (res.length < 2) return { data: Buffer.alloc(0), sw: 0 };
  const b = Buffer.from(res);
  return { data: b.subarray(0, b.length - 2), sw: b.readUInt16BE(b.length - 2) };
}

export interface Ev2SessionKeys {
  enc: Buffer;
  mac: Buffer;
}

/** SesAuthENCKey / SesAuthMACKey from RndA and RndB (SV1 = A5 5A ..., SV2 = 5A A5 ...). */
export function ev2SessionKeys(key: Uint8Array, rndA: Uint8Array, rndB: Uint8Array): Ev2SessionKeys {
  const mix = Buffer.alloc(6);
  for (let i = 0; i < 6; i++) mix[i] = (rndA[2 + i] as number) ^ (rndB[i] as number);
  const tail = Buffer.concat([rndA.subarray(0, 2), mix, rndB.subarray(6, 16), rndA.subarray(8, 16)]);
  const sv = (a: number, b: number) => Buffer.concat([Buffer.from([a, b, 0x00, 0x01, 0x00, 0x80]), tail]);
  return { enc: aesCmac(key, sv(0xa5, 0x5a)), mac: aesCmac(key, sv(0x5a, 0xa5)) };
}

/** An authenticated session: keys, transaction identifier and the command counter. */
export class Ev2Session {
  constructor(
    readonly keys: Ev2SessionKeys,
    readonly ti: Buffer,
    public cmdCtr = 0,
    readonly keyNo = 0,
  ) {}

  private ctrBytes(ctr: number): Buffer {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(ctr & 0xffff, 0);
    return b;
  }

  private iv(label: [number, number], ctr: number): Buffer {
    const input = Buffer.concat([Buffer.from(label), this.ti, this.ctrBytes(ctr), Buffer.alloc(8)]);
    return aesCbcEncrypt(this.keys.enc, ZERO_IV, input);
  }

  /** MAC over Cmd || CmdCtr || TI || header || data (command direction). */
  commandMac(cmd: number, header: Uint8Array, data: Uint8Array, ctr = this.cmdCtr): Buffer {
    const input = Buffer.concat([Buffer.from([cmd]), this.ctrBytes(ctr), this.ti, header, data]);
    return truncateMac(aesCmac(this.keys.mac, input));
  }

  /** MAC over RC || CmdCtr || TI || data (response direction, counter already advanced). */
  responseMac(rc: number, data: Uint8Array, ctr: number): Buffer {
    const input = Buffer.concat([Buffer.from([rc]), this.ctrBytes(ctr), this.ti, data]);
    return truncateMac(aesCmac(this.keys.mac, input));
  }

  encryptCommandData(data: Uint8Array, ctr = this.cmdCtr): Buffer {
    return aesCbcEncrypt(this.keys.enc, this.iv([0xa5, 0x5a], ctr), padM2(data));
  }

  decryptCommandData(enc: Uint8Array, ctr = this.cmdCtr): Buffer | null {
    if (enc.length === 0 || enc.length % 16 !== 0) return null;
    return unpadM2(aesCbcDecrypt(this.keys.enc, this.iv([0xa5, 0x5a], ctr), enc));
  }

  encryptResponseData(data: Uint8Array, ctr: number): Buffer {
    return aesCbcEncrypt(this.keys.enc, this.iv([0x5a, 0xa5], ctr), padM2(data));
  }

  decryptResponseData(enc: Uint8Array, ctr: number): Buffer | null {
    if (enc.length === 0 || enc.length % 16 !== 0) return null;
    return unpadM2(aesCbcDecrypt(this.keys.enc, this.iv([0x5a, 0xa5], ctr), enc));
  }

  /** A CommMode.Full command APDU (header in clear, data encrypted, MAC). Does not advance the counter. */
  fullCommand(cmd: number, header: Uint8Array, data: Uint8Array): Buffer {
    const enc = this.encryptCommandData(data);
    const mac = this.commandMac(cmd, header, enc);
    return wrapNative(cmd, Buffer.concat([header, enc, mac]));
  }

  /** A CommMode.MAC command APDU. Does not advance the counter. */
  macCommand(cmd: number, header: Uint8Array, data: Uint8Array = Buffer.alloc(0)): Buffer {
    return wrapNative(cmd, Buffer.concat([header, data, this.commandMac(cmd, header, data)]));
  }

  /**
   * Checks a response to the last command (MAC mode or Full mode) and advances the counter.
   * Returns the response data (decrypted when `full`), or an error naming what failed.
   */
  checkResponse(res: Uint8Array, full: boolean): { ok: true; data: Buffer } | { ok: false; reason: string } {
    const { data, sw } = splitResponse(res);
    if (sw !== SW.OK) return { ok: false, reason: `card answered ${sw.toString(16).toUpperCase()}` };
    const next = this.cmdCtr + 1;
    if (data.length < 8) return { ok: false, reason: 'response without a MAC' };
    const body = data.subarray(0, data.length - 8);
    if (!macEquals(this.responseMac(0x00, body, next), data.subarray(data.length - 8)))
      return { ok: false, reason: 'response MAC does not verify' };
    this.cmdCtr = next;
    if (!full || body.length === 0) return { ok: true, data: body };
    const plain = this.decryptResponseData(body, next);
    return plain ? { ok: true, data: plain } : { ok: false, reason: 'response padding malformed' };
  }
}

/** ChangeKey data (before encryption): the key that opened the session vs any other key. */
export function changeKeyData(o: {
  keyNo: number;
  authKeyNo: number;
  newKey: Uint8Array;
  oldKey?: Uint8Array;
  version: number;
}): Buffer {
  if (o.keyNo === o.authKeyNo) return Buffer.concat([o.newKey, Buffer.from([o.version])]);
  if (!o.oldKey) throw new Error('changing another key than the authenticated one needs the old key');
  const x = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) x[i] = (o.newKey[i] as number) ^ (o.oldKey[i] as number);
  return Buffer.concat([x, Buffer.from([o.version]), crc32Nxp(o.newKey)]);
}

// ───────────── PCD side of AuthenticateEV2First ─────────────

/** First APDU: 90 71 00 00 02 KeyNo LenCap=00 00. */
export function authFirstCommand(keyNo: number): Buffer {
  return wrapNative(EV2.AUTH_FIRST, Buffer.from([keyNo, 0x00]));
}

/** From the card's E(K, RndB): the second APDU, carrying E(K, RndA || RndB'). */
export function authFirstPart2(
  key: Uint8Array,
  encRndB: Uint8Array,
  rndA: Uint8Array,
): { apdu: Buffer; rndB: Buffer } {
  if (encRndB.length !== 16) throw new Error('E(K, RndB) must be 16 bytes');
  const rndB = aesCbcDecrypt(key, ZERO_IV, encRndB);
  const enc = aesCbcEncrypt(key, ZERO_IV, Buffer.concat([rndA, rotl(rndB)]));
  return { apdu: wrapNative(EV2.ADDITIONAL_FRAME, enc), rndB };
}

/** Checks the card's final answer E(K, TI || RndA' || PDcap2 || PCDcap2) and opens the session. */
export function authFirstFinish(
  key: Uint8Array,
  keyNo: number,
  rndA: Uint8Array,
  rndB: Uint8Array,
  encFinal: Uint8Array,
): { ok: true; session: Ev2Session } | { ok: false; reason: string } {
  if (encFinal.length !== 32)
    return { ok: false, reason: `final answer must be 32 bytes, got ${encFinal.length}` };
  const plain = aesCbcDecrypt(key, ZERO_IV, encFinal);
  if (!macEquals(plain.subarray(4, 20), rotl(rndA)))
    return { ok: false, reason: 'the card did not return our challenge (it holds another key)' };
  const ti = Buffer.from(plain.subarray(0, 4));
  return { ok: true, session: new Ev2Session(ev2SessionKeys(key, rndA, rndB), ti, 0, keyNo) };
}

// ───────────── PICC side (the virtual card) ─────────────

/** The card's first answer: E(K, RndB). */
export function piccAuthPart1(key: Uint8Array, rndB: Uint8Array): Buffer {
  return aesCbcEncrypt(key, ZERO_IV, rndB);
}

/** The card checks E(K, RndA || RndB') and answers E(K, TI || RndA' || PDcap2 || PCDcap2). */
export function piccAuthPart2(
  key: Uint8Array,
  keyNo: number,
  rndB: Uint8Array,
  enc: Uint8Array,
  ti: Uint8Array,
): { ok: true; answer: Buffer; session: Ev2Session } | { ok: false } {
  if (enc.length !== 32) return { ok: false };
  const plain = aesCbcDecrypt(key, ZERO_IV, enc);
  const rndA = plain.subarray(0, 16);
  if (!macEquals(plain.subarray(16, 32), rotl(rndB))) return { ok: false };
  const answer = aesCbcEncrypt(key, ZERO_IV, Buffer.concat([ti, rotl(rndA), Buffer.alloc(12)]));
  return {
    ok: true,
    answer,
    session: new Ev2Session(ev2SessionKeys(key, rndA, rndB), Buffer.from(ti), 0, keyNo),
  };
}
