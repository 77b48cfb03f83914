/**
 * A virtual MIFARE DESFire EV2/EV3 applet (AES application) for the virtual card: native ISO-wrapped
 * SelectApplication (5A), AuthenticateEV2First (71 / AF) with the application's AES keys, and
 * GetCardUID (51) in CommMode.Full: after a mutual authentication the card returns its real UID
 * encrypted and MACed under the session keys, which a copied UID cannot produce. Errors as the data
 * sheet names them: 91A0 application not found, 91AE authentication error, 919D permission denied;
 * an ISO SELECT of an application it does not have (the NDEF application) gets 6A82.
 */
import { randomBytes } from 'node:crypto';
import { EV2, piccAuthPart1, piccAuthPart2, SW, type Ev2Session } from '../../protocol/index.js';

const sw = (n: number) => Buffer.from([n >> 8, n & 0xff]);

export class VirtualDesfire {
  readonly log: Buffer[] = [];
  private selected: string | null = null;
  private auth: { keyNo: number; rndB: Buffer } | null = null;
  private session: Ev2Session | null = null;

  /** `apps`: AID (6 hex) → the application's AES keys. */
  constructor(
    readonly uid: Buffer,
    readonly apps: Map<string, Buffer[]>,
  ) {}

  powerOn(): void {
    this.selected = null;
    this.auth = null;
    this.session = null;
  }

  respond(apdu: Buffer): Buffer {
    this.log.push(apdu);
    // ISO SELECT by name (e.g. the NDEF application a reader tries first): not on this card
    if (apdu[0] === 0x00 && apdu[1] === 0xa4) return sw(0x6a82);
    if (apdu[0] !== 0x90) return sw(0x6e00);
    const ins = apdu[1] ?? 0;
    const data = apdu.length > 5 ? apdu.subarray(5, 5 + (apdu[4] ?? 0)) : Buffer.alloc(0);
    switch (ins) {
      case EV2.SELECT_APPLICATION: {
        this.powerOn();
        const aid = data.toString('hex').toUpperCase();
        if (data.length !== 3 || !this.apps.has(aid)) return sw(0x91a0);
        this.selected = aid;
        return sw(SW.OK);
      }
      case EV2.AUTH_FIRST: {
        this.session = null;
        const keys = this.selected ? this.apps.get(this.selected) : undefined;
        const keyNo = data[0] ?? 0xff;
        if (!keys) return sw(SW.PERMISSION_DENIED);
        if (keyNo >= keys.length) return sw(SW.NO_SUCH_KEY);
        const rndB = randomBytes(16);
        this.auth = { keyNo, rndB };
        return Buffer.concat([piccAuthPart1(keys[keyNo] as Buffer, rndB), sw(SW.MORE)]);
      }
      case EV2.ADDITIONAL_FRAME: {
        const a = this.auth;
        this.auth = null;
        const keys = this.selected ? this.apps.get(this.selected) : undefined;
        if (!a || !keys) return sw(SW.PERMISSION_DENIED);
        const r = piccAuthPart2(keys[a.keyNo] as Buffer, a.keyNo, a.rndB, data, randomBytes(4));
        if (!r.ok) return sw(SW.AUTH_ERROR);
        this.session = r.session;
        return Buffer.concat([r.answer, sw(SW.OK)]);
      }
      case EV2.GET_CARD_UID: {
        const s = this.session;
        if (!s) return sw(SW.PERMISSION_DENIED);
        // command MAC (CommMode.MAC on the command: no data, the MAC only)
        if (
          data.length !== 8 ||
          !s.commandMac(EV2.GET_CARD_UID, Buffer.alloc(0), Buffer.alloc(0)).equals(data)
        ) {
          this.session = null;
          return sw(SW.INTEGRITY_ERROR);
        }
        s.cmdCtr++;
        const enc = s.encryptResponseData(this.uid, s.cmdCtr);
        return Buffer.concat([enc, s.responseMac(0x00, enc, s.cmdCtr), sw(SW.OK)]);
      }
      default:
        return sw(0x911c);
    }
  }
}
