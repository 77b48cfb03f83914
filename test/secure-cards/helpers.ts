/** Shared by the secure-card tests: a personalised virtual NTAG 424 DNA and tap events. */
import { readSecureProof, type Transmit } from '../../device/src/drivers/secure-read.js';
import { keysForCard, personaliseNtag424 } from '../../device/src/secure/personalise.js';
import { pseudonymiseCard, type CardProof, type TapEvent } from '../../protocol/index.js';
import { VirtualNtag424 } from '../pcsc/virtual-ntag424.js';

export const FLEET_KEY = 'test-fleet-key-0123456789abcdef';
export const MASTER = Buffer.from('00112233445566778899AABBCCDDEEFF', 'hex');
export const URL = 'https://tag.visittag.invalid/t';

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
