/**
 * Personalising a blank NTAG 424 DNA for visittag (issue 18), through any PC/SC reader:
 * write the NDEF URL template, authenticate with the factory key 0 (AuthenticateEV2First), switch
 * on Secure Dynamic Messaging (ChangeFileSettings, CommMode.Full: encrypted PICCData with UID and
 * counter, SDMMAC over the session key of key 1), then set keys 1 and 2 and finally key 0 (ChangeKey).
 * Key layout (docs/secure-cards.md): key 0 = card master (per card), key 1 = SDM file read key (per
 * card, AN10922 from the master key), key 2 = SDM meta read key (fleet-wide: it must decrypt the UID
 * before the card is known). The card keys come from the master key the card office holds; a deployed
 * reader never holds it.
 */
import { randomBytes } from 'node:crypto';
import {
  authFirstCommand,
  authFirstFinish,
  authFirstPart2,
  cardKey,
  changeKeyData,
  EV2,
  sharedCardKey,
  splitResponse,
  type Ev2Session,
} from '../../../protocol/index.js';
import { SELECT_NDEF_APP, SELECT_NDEF_FILE, type Transmit } from '../drivers/secure-read.js';

export const KEY_NO = { master: 0, fileRead: 1, metaRead: 2 } as const;

export interface CardKeys {
  master: Buffer;
  fileRead: Buffer;
  metaRead: Buffer;
}

/** The keys a card with this UID gets from the fleet's master key (AN10922 diversification). */
export function keysForCard(masterKey: Uint8Array, uid: Uint8Array): CardKeys {
  return {
    master: cardKey(masterKey, uid, KEY_NO.master),
    fileRead: cardKey(masterKey, uid, KEY_NO.fileRead),
    metaRead: sharedCardKey(masterKey, KEY_NO.metaRead),
  };
}

/** The NDEF file: one URI record https://<url>?e=<32 × 0>&c=<16 × 0>, with the mirror offsets. */
export function ndefTemplate(url: string): { file: Buffer; piccOffset: number; macOffset: number } {
  const rest = url.replace(/^https:\/\//, '');
  const sep = rest.includes('?') ? '&' : '?';
  const text = `${rest}${sep}e=${'0'.repeat(32)}&c=${'0'.repeat(16)}`;
  const payload = Buffer.concat([Buffer.from([0x04]), Buffer.from(text, 'ascii')]); // 04 = "https://"
  if (payload.length > 240)
    throw new Error('the URL is too long for the NDEF file (at most ~180 characters)');
  const record = Buffer.concat([Buffer.from([0xd1, 0x01, payload.length, 0x55]), payload]);
  const file = Buffer.concat([Buffer.from([record.length >> 8, record.length & 0xff]), record]);
  const textAt = 2 + 4 + 1;
  return {
    file,
    piccOffset: textAt + text.indexOf('e=') + 2,
    macOffset: textAt + text.indexOf('&c=') + 3,
  };
}

/** ChangeFileSettings data for the NDEF file: SDM on, UID + counter mirrored (ASCII), MAC over nothing. */
export function sdmFileSettings(piccOffset: number, macOffset: number): Buffer {
  const off = (n: number) => {
    const b = Buffer.alloc(3);
    b.writeUIntLE(n, 0, 3);
    return b;
  };
  return Buffer.concat([
    // FileOption: SDM enabled, CommMode plain; AccessRights: read free, write/RW/change with key 0
    Buffer.from([0x40, 0x00, 0xe0]),
    // SDMOptions: UID mirror, SDMReadCtr mirror, ASCII; SDMAccessRights: meta read key 2, file read key 1, counter key 1
    Buffer.from([0xc1, 0xf1, 0x21]),
    off(piccOffset),
    off(macOffset), // SDMMACInputOffset = SDMMACOffset: the MAC covers no file data
    off(macOffset),
  ]);
}

export type PersonaliseResult = { ok: true } | { ok: false; step: string; reason: string };

const hexSw = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

export interface PersonaliseOptions {
  /** The card's UID (from GET DATA). */
  uid: Buffer;
  keys: CardKeys;
  /** The URL a phone opens when it reads the card. */
  url: string;
  /** The card's current key 0 (a blank card: 16 zero bytes). */
  currentMasterKey?: Buffer;
  random?: (n: number) => Buffer;
}

/** Runs the whole personalisation. Stops at the first failing step and names it. */
export async function personaliseNtag424(
  transmit: Transmit,
  o: PersonaliseOptions,
): Promise<PersonaliseResult> {
  const rnd = o.random ?? randomBytes;
  const fail = (step: string, reason: string) => ({ ok: false as const, step, reason });
  const plain = async (
    step: string,
    apdu: Buffer,
  ): Promise<{ ok: false; step: string; reason: string } | null> => {
    const { sw } = splitResponse(await transmit(apdu, 2));
    return sw === 0x9000 ? null : fail(step, `card answered ${hexSw(sw)}`);
  };
  const sel = await plain('select NDEF application', SELECT_NDEF_APP);
  if (sel) return { ...sel, reason: `${sel.reason}: not an NTAG 424 DNA` };
  const tpl = ndefTemplate(o.url);
  const selFile = await plain('select NDEF file', SELECT_NDEF_FILE);
  if (selFile) return selFile;
  const write = await plain(
    'write NDEF template',
    Buffer.concat([Buffer.from([0x00, 0xd6, 0x00, 0x00, tpl.file.length]), tpl.file]),
  );
  if (write)
    return {
      ...write,
      reason: `${write.reason} (already personalised? its file is no longer freely writable)`,
    };

  // AuthenticateEV2First with key 0
  const key0 = o.currentMasterKey ?? Buffer.alloc(16);
  const a1 = splitResponse(await transmit(authFirstCommand(KEY_NO.master), 20));
  if (a1.sw !== 0x91af) return fail('authenticate key 0', `card answered ${hexSw(a1.sw)}`);
  const rndA = rnd(16);
  const p2 = authFirstPart2(key0, a1.data, rndA);
  const a2 = splitResponse(await transmit(p2.apdu, 36));
  if (a2.sw !== 0x9100)
    return fail(
      'authenticate key 0',
      `card answered ${hexSw(a2.sw)}: its key 0 is not the one given (a card personalised before needs its current key)`,
    );
  const fin = authFirstFinish(key0, KEY_NO.master, rndA, p2.rndB, a2.data);
  if (!fin.ok) return fail('authenticate key 0', fin.reason);
  const s: Ev2Session = fin.session;

  const full = async (step: string, cmd: number, header: Buffer, data: Buffer, expectMac: boolean) => {
    const res = await transmit(s.fullCommand(cmd, header, data), 20);
    if (!expectMac) {
      const { sw } = splitResponse(res);
      return sw === 0x9100 ? null : fail(step, `card answered ${hexSw(sw)}`);
    }
    const r = s.checkResponse(res, false);
    return r.ok ? null : fail(step, r.reason);
  };
  const steps: Array<[string, number, Buffer, Buffer, boolean]> = [
    [
      'enable SDM',
      EV2.CHANGE_FILE_SETTINGS,
      Buffer.from([0x02]),
      sdmFileSettings(tpl.piccOffset, tpl.macOffset),
      true,
    ],
    [
      'set key 1 (SDM file read)',
      EV2.CHANGE_KEY,
      Buffer.from([KEY_NO.fileRead]),
      changeKeyData({
        keyNo: 1,
        authKeyNo: 0,
        newKey: o.keys.fileRead,
        oldKey: Buffer.alloc(16),
        version: 1,
      }),
      true,
    ],
    [
      'set key 2 (SDM meta read)',
      EV2.CHANGE_KEY,
      Buffer.from([KEY_NO.metaRead]),
      changeKeyData({
        keyNo: 2,
        authKeyNo: 0,
        newKey: o.keys.metaRead,
        oldKey: Buffer.alloc(16),
        version: 1,
      }),
      true,
    ],
    [
      'set key 0 (card master)',
      EV2.CHANGE_KEY,
      Buffer.from([KEY_NO.master]),
      changeKeyData({ keyNo: 0, authKeyNo: 0, newKey: o.keys.master, version: 1 }),
      false,
    ],
  ];
  for (const [step, cmd, header, data, mac] of steps) {
    const r = await full(step, cmd, header, data, mac);
    if (r) return r;
  }
  return { ok: true };
}
