/**
 * A virtual NTAG 424 DNA applet for the virtual card (virtual-card.ts), byte for byte as the NXP
 * data sheet and AN12196 describe the parts the project uses:
 * - ISO SELECT of the NDEF application (D2760000850101) and of the NDEF file (E104), READ BINARY and
 *   UPDATE BINARY (plain, as the file's access rights allow);
 * - Secure Dynamic Messaging on the NDEF file: on the first read of a presentation the SDMReadCtr
 *   goes up by one and the file shows the encrypted PICCData (UID + counter, SDMMetaReadKey) at
 *   PICCDataOffset and the SDMMAC (session key from SDMFileReadKey, SV2) at SDMMACOffset, in ASCII hex;
 * - AuthenticateEV2First, ChangeKey and ChangeFileSettings in CommMode.Full (personalisation).
 * A blank card has five all-zero keys and SDM off, like a card from the factory.
 */
import { randomBytes } from 'node:crypto';
import {
  changeKeyData,
  crc32Nxp,
  encryptPiccData,
  EV2,
  piccAuthPart1,
  piccAuthPart2,
  sdmMac,
  SDM_COUNTER_MAX,
  SW,
  type Ev2Session,
} from '../../protocol/index.js';

export const NDEF_AID = Buffer.from('D2760000850101', 'hex');
const NDEF_FILE_ID = 0xe104;
const CC_FILE_ID = 0xe103;
const NDEF_FILE_NO = 0x02;
const FILE_SIZE = 256;

const sw = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const OK = sw(0x9000);

export interface SdmSettings {
  fileOption: number;
  accessRights: Buffer;
  sdmOptions: number;
  sdmAccessRights: Buffer;
  piccDataOffset: number;
  macInputOffset: number;
  macOffset: number;
}

export class VirtualNtag424 {
  readonly keys: Buffer[] = Array.from({ length: 5 }, () => Buffer.alloc(16));
  readonly keyVersions = [0, 0, 0, 0, 0];
  /** SDMReadCtr. */
  counter = 0;
  sdm: SdmSettings | null = null;
  /** Free read and write, change with key 0 (factory default of the NDEF file). */
  accessRights = Buffer.from([0x00, 0xee]);
  readonly ndef = Buffer.alloc(FILE_SIZE);
  /** Every APDU this card saw (for tests). */
  readonly log: Buffer[] = [];
  /** Reads answered with a SUN message (counter went up). */
  taps = 0;

  private appSelected = false;
  private file: number | null = null;
  private mirrored: Buffer | null = null;
  private auth: { keyNo: number; rndB: Buffer } | null = null;
  private session: Ev2Session | null = null;

  /** `uid`: 7 bytes on a real NTAG 424 DNA (other lengths only for the reader contract's UID cases, SDM off). */
  constructor(readonly uid: Buffer) {}

  powerOn(): void {
    this.appSelected = false;
    this.file = null;
    this.mirrored = null;
    this.auth = null;
    this.session = null;
  }

  respond(apdu: Buffer): Buffer {
    this.log.push(apdu);
    const [cla, ins, p1, p2] = apdu;
    if (cla === 0x00 && ins === 0xa4) return this.select(p1 ?? 0, apdu);
    if (cla === 0x00 && ins === 0xb0) return this.readBinary(((p1 ?? 0) << 8) | (p2 ?? 0), apdu);
    if (cla === 0x00 && ins === 0xd6) return this.updateBinary(((p1 ?? 0) << 8) | (p2 ?? 0), apdu);
    if (cla === 0x90) return this.native(ins ?? 0, apdu);
    return sw(0x6e00);
  }

  // ───────── ISO 7816-4 ─────────

  private select(p1: number, apdu: Buffer): Buffer {
    const lc = apdu[4] ?? 0;
    const data = apdu.subarray(5, 5 + lc);
    if (p1 === 0x04) {
      if (!data.equals(NDEF_AID)) return sw(0x6a82);
      this.powerOn();
      this.appSelected = true;
      return OK;
    }
    if (p1 === 0x00 && this.appSelected && data.length === 2) {
      const id = data.readUInt16BE(0);
      if (id !== NDEF_FILE_ID && id !== CC_FILE_ID) return sw(0x6a82);
      this.file = id;
      return OK;
    }
    return sw(0x6a82);
  }

  private readBinary(offset: number, apdu: Buffer): Buffer {
    if (this.file === null) return sw(0x6986);
    const le = apdu.length > 4 ? (apdu[apdu.length - 1] ?? 0) : 0;
    const want = le === 0 ? 256 : le;
    const content = this.file === CC_FILE_ID ? this.ccFile() : this.fileForRead();
    if (!content) return sw(0x6982);
    if (offset >= content.length) return sw(0x6b00);
    return Buffer.concat([content.subarray(offset, offset + want), OK]);
  }

  private updateBinary(offset: number, apdu: Buffer): Buffer {
    if (this.file !== NDEF_FILE_ID) return sw(0x6986);
    const writeRight = (this.accessRights[1] ?? 0) & 0x0f;
    if (writeRight !== 0x0e) return sw(0x6982); // only free write is possible without a secure channel here
    const lc = apdu[4] ?? 0;
    const data = apdu.subarray(5, 5 + lc);
    if (offset + data.length > FILE_SIZE) return sw(0x6700);
    data.copy(this.ndef, offset);
    return OK;
  }

  private ccFile(): Buffer {
    return Buffer.from('001720010000FF0406E10401000000000506E10500808283000000000000000000', 'hex');
  }

  /** The NDEF file as a read shows it: with SDM, mirrored once per presentation (the counter goes up once). */
  private fileForRead(): Buffer | null {
    const readRight = ((this.accessRights[1] ?? 0) >> 4) & 0x0f;
    if (readRight !== 0x0e) return null;
    if (!this.sdm) return this.ndef;
    if (this.mirrored) return this.mirrored;
    if (this.counter >= SDM_COUNTER_MAX) return null; // counter exhausted: the card refuses
    this.counter++;
    this.taps++;
    const s = this.sdm;
    const out = Buffer.from(this.ndef);
    const meta = (s.sdmAccessRights.readUInt16LE(0) >> 12) & 0x0f;
    const fileRead = (s.sdmAccessRights.readUInt16LE(0) >> 8) & 0x0f;
    if (meta <= 4) {
      const enc = encryptPiccData(this.keys[meta] as Buffer, this.uid, this.counter);
      Buffer.from(enc.toString('hex').toUpperCase(), 'ascii').copy(out, s.piccDataOffset);
    }
    if (fileRead <= 4) {
      const input = out.subarray(s.macInputOffset, s.macOffset);
      const mac = sdmMac(this.keys[fileRead] as Buffer, this.uid, this.counter, input);
      Buffer.from(mac.toString('hex').toUpperCase(), 'ascii').copy(out, s.macOffset);
    }
    this.mirrored = out;
    return out;
  }

  // ───────── native commands (ISO wrapped) ─────────

  private native(ins: number, apdu: Buffer): Buffer {
    const lc = apdu.length > 5 ? (apdu[4] ?? 0) : 0;
    const data = apdu.subarray(5, 5 + lc);
    switch (ins) {
      case EV2.AUTH_FIRST:
        return this.authFirst(data);
      case EV2.ADDITIONAL_FRAME:
        return this.authPart2(data);
      case EV2.CHANGE_KEY:
        return this.changeKey(data);
      case EV2.CHANGE_FILE_SETTINGS:
        return this.changeFileSettings(data);
      default:
        return sw(0x911c); // illegal command
    }
  }

  private authFirst(data: Buffer): Buffer {
    this.session = null;
    const keyNo = data[0] ?? 0xff;
    if (!this.appSelected) return sw(SW.PERMISSION_DENIED);
    if (keyNo > 4) return sw(SW.NO_SUCH_KEY);
    const rndB = randomBytes(16);
    this.auth = { keyNo, rndB };
    return Buffer.concat([piccAuthPart1(this.keys[keyNo] as Buffer, rndB), sw(SW.MORE)]);
  }

  private authPart2(data: Buffer): Buffer {
    const a = this.auth;
    this.auth = null;
    if (!a) return sw(SW.PERMISSION_DENIED);
    const r = piccAuthPart2(this.keys[a.keyNo] as Buffer, a.keyNo, a.rndB, data, randomBytes(4));
    if (!r.ok) return sw(SW.AUTH_ERROR);
    this.session = r.session;
    return Buffer.concat([r.answer, sw(SW.OK)]);
  }

  /** Checks the command MAC, decrypts the data; on any failure the session ends (as the card does). */
  private openFull(cmd: number, header: Buffer, rest: Buffer): Buffer | null {
    const s = this.session;
    if (!s || rest.length < 8) return null;
    const enc = rest.subarray(0, rest.length - 8);
    const mac = rest.subarray(rest.length - 8);
    if (!s.commandMac(cmd, header, enc).equals(mac)) {
      this.session = null;
      return null;
    }
    return s.decryptCommandData(enc);
  }

  private okWithMac(): Buffer {
    const s = this.session as Ev2Session;
    s.cmdCtr++;
    return Buffer.concat([s.responseMac(0x00, Buffer.alloc(0), s.cmdCtr), sw(SW.OK)]);
  }

  private changeKey(data: Buffer): Buffer {
    const s = this.session;
    if (!s || s.keyNo !== 0) return sw(SW.PERMISSION_DENIED);
    const keyNo = data[0] ?? 0xff;
    if (keyNo > 4) return sw(SW.NO_SUCH_KEY);
    const plain = this.openFull(EV2.CHANGE_KEY, data.subarray(0, 1), data.subarray(1));
    if (!plain) return sw(SW.INTEGRITY_ERROR);
    if (keyNo === s.keyNo) {
      if (plain.length !== 17) return sw(SW.LENGTH_ERROR);
      this.keys[keyNo] = Buffer.from(plain.subarray(0, 16));
      this.keyVersions[keyNo] = plain[16] ?? 0;
      this.session = null; // changing the session's own key ends the session, no MAC in the answer
      return sw(SW.OK);
    }
    if (plain.length !== 21) return sw(SW.LENGTH_ERROR);
    const old = this.keys[keyNo] as Buffer;
    const newKey = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) newKey[i] = (plain[i] as number) ^ (old[i] as number);
    if (!crc32Nxp(newKey).equals(plain.subarray(17, 21))) return sw(SW.INTEGRITY_ERROR);
    const check = changeKeyData({ keyNo, authKeyNo: s.keyNo, newKey, oldKey: old, version: plain[16] ?? 0 });
    if (!check.equals(plain)) return sw(SW.INTEGRITY_ERROR);
    this.keys[keyNo] = newKey;
    this.keyVersions[keyNo] = plain[16] ?? 0;
    return this.okWithMac();
  }

  private changeFileSettings(data: Buffer): Buffer {
    const s = this.session;
    const change = (this.accessRights[0] ?? 0) & 0x0f;
    if (!s || (change !== 0x0e && s.keyNo !== change)) return sw(SW.PERMISSION_DENIED);
    if (data[0] !== NDEF_FILE_NO) return sw(0x91f0); // file not found
    const p = this.openFull(EV2.CHANGE_FILE_SETTINGS, data.subarray(0, 1), data.subarray(1));
    if (!p || p.length < 3) return sw(SW.INTEGRITY_ERROR);
    const fileOption = p[0] as number;
    const accessRights = Buffer.from(p.subarray(1, 3));
    if ((fileOption & 0x40) === 0) {
      this.sdm = null;
      this.accessRights = accessRights;
      return this.okWithMac();
    }
    if (p.length < 6) return sw(SW.LENGTH_ERROR);
    const sdmOptions = p[3] as number;
    const sdmAccessRights = Buffer.from(p.subarray(4, 6));
    const ar = sdmAccessRights.readUInt16LE(0);
    const meta = (ar >> 12) & 0x0f;
    const fileRead = (ar >> 8) & 0x0f;
    let at = 6;
    const off = () => {
      const v = p.length >= at + 3 ? p.readUIntLE(at, 3) : -1;
      at += 3;
      return v;
    };
    // This applet supports what the project uses: UID + counter mirrored encrypted, ASCII, a MAC.
    if (sdmOptions !== 0xc1 || meta > 4 || fileRead > 4) return sw(SW.PARAMETER_ERROR);
    const piccDataOffset = off();
    const macInputOffset = off();
    const macOffset = off();
    if (
      macOffset < 0 ||
      p.length !== at ||
      piccDataOffset + 32 > FILE_SIZE ||
      macOffset + 16 > FILE_SIZE ||
      macInputOffset > macOffset
    )
      return sw(SW.PARAMETER_ERROR);
    this.accessRights = accessRights;
    this.sdm = {
      fileOption,
      accessRights,
      sdmOptions,
      sdmAccessRights,
      piccDataOffset,
      macInputOffset,
      macOffset,
    };
    return this.okWithMac();
  }
}
