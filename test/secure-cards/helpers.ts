/** Shared by the secure-card tests: a personalised virtual NTAG 424 DNA, a virtual DESFire, and tap events. */
import { readSecureProof, type Transmit } from '../../device/src/drivers/secure-read.js';
import { keysForCard, personaliseNtag424 } from '../../device/src/secure/personalise.js';
import {
  cardKey,
  desfireCardKey,
  pseudonymiseCard,
  type CardProof,
  type TapEvent,
} from '../../protocol/index.js';
import { VirtualDesfire } from '../pcsc/virtual-desfire.js';
import { VirtualNtag424 } from '../pcsc/virtual-ntag424.js';

export const FLEET_KEY = 'test-fleet-key-0123456789abcdef';
export const MASTER = Buffer.from('00112233445566778899AABBCCDDEEFF', 'hex');
export const URL = 'https://tag.visittag.invalid/t';
/** The fleet's DESFire application and read-key master (what readers and the gateway are given). */
export const DESFIRE_AID = Buffer.from('F56A01', 'hex');
export const DESFIRE_MASTER = Buffer.from('A0A1A2A3A4A5A6A7A8A9AAABACADAEAF', 'hex');

/**
 * A DESFire EV2/EV3 of the fleet: application F56A01 with key 0 (application master, the card
 * office's, never on a reader) and key 1 (the read key, diversified per card from DESFIRE_MASTER).
 */
export function desfireCard(uid: Buffer, master = DESFIRE_MASTER): VirtualDesfire {
  const chip = new VirtualDesfire(
    uid,
    new Map([['F56A01', [cardKey(MASTER, uid, 0), desfireCardKey(master, uid, 1)]]]),
  );
  chip.powerOn();
  return chip;
}

/** Talks to the applet directly (no PC/SC), as a reader would. */
export const direct =
  (card: VirtualNtag424): Transmit =>
  (apdu) =>
    Promise.resolve(card.respond(apdu));

export async function personalisedCard(uidHex: string, master = MASTER): Promise<VirtualNtag424> {
  const card = new VirtualNtag424(Buffer.from(uidHex, 'hex'));
  card.powerOn();
  const r = await personaliseNtag424(direct(card), {
    uid: card.uid,
    keys: keysForCard(master, card.uid),
    url: URL,
  });
  if (!r.ok) throw new Error(`personalisation failed at ${r.step}: ${r.reason}`);
  return card;
}

/** One presentation of the card: power on, read the SUN message. */
export async function tapProof(card: VirtualNtag424): Promise<CardProof> {
  card.powerOn();
  const r = await readSecureProof(direct(card));
  if (r.kind !== 'proof') throw new Error(`no proof: ${JSON.stringify(r)}`);
  return r.proof;
}

let n = 0;
export function tapEvent(uidHex: string, proof?: CardProof, readerId = 'rdr-0001'): TapEvent {
  n++;
  return {
    readerId,
    seq: n,
    eventId: `e${n.toString().padStart(6, '0')}`,
    card: pseudonymiseCard(uidHex, FLEET_KEY),
    decision: 'start',
    visitId: `v${n}`,
    time: { wallMs: 1_795_420_800_000 + n, bootId: 'b-1', monoMs: n, synced: true },
    ...(proof ? { cardProof: proof } : {}),
  };
}
