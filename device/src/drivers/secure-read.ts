/**
 * Reading a secure card's proof of presence over ISO 14443-4 APDUs (issue 18): an NTAG 424 DNA with
 * Secure Dynamic Messaging mirrors a fresh SUN message into its NDEF file at every tap. The device
 * selects the NDEF application (D2760000850101) and the NDEF file (E104), reads it, and passes the
 * mirrored PICCENCData ("e=") and SDMMAC ("c=") on with the tap. It holds no key: only the gateway
 * can check them (docs/secure-cards.md).
 */
import type { CardProof } from '../../../protocol/index.js';

/** Sends one APDU to the card in the field; resolves with the response APDU (data + status word). */
export type Transmit = (apdu: Buffer, maxResponse: number) => Promise<Buffer>;

export const SELECT_NDEF_APP = Buffer.from('00A4040C07D276000085010100', 'hex');
export const SELECT_NDEF_FILE = Buffer.from('00A4000C02E104', 'hex');
/** READ BINARY of the whole 256-byte NDEF file (Le = 00 means 256). */
export const READ_NDEF_FILE = Buffer.from('00B0000000', 'hex');

export type SecureReadResult =
  | { kind: 'none' }
  | { kind: 'proof'; proof: CardProof }
  | { kind: 'error'; code: 'secure-read-failed'; reason: string };

const SUN_PARAMS = /[?&]e=([0-9A-Fa-f]{32})&c=([0-9A-Fa-f]{16})/;

function sw(res: Buffer): number {
  return res.length >= 2 ? res.readUInt16BE(res.length - 2) : 0;
}

const hexSw = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/**
 * `none`: not an NTAG 424 DNA application, or no SUN message in its NDEF file (a blank card): the
 * tap is UID-only. `error`: the card has the application but refused the read (e.g. its 24-bit
 * tap counter is used up), so it is neither a valid secure tap nor a plain one.
 */
export async function readSecureProof(transmit: Transmit): Promise<SecureReadResult> {
  const sel = await transmit(SELECT_NDEF_APP, 2);
  if (sw(sel) !== 0x9000) return { kind: 'none' };
  const file = await transmit(SELECT_NDEF_FILE, 2);
  if (sw(file) !== 0x9000)
    return {
      kind: 'error',
      code: 'secure-read-failed',
      reason: `NDEF file not selectable (${hexSw(sw(file))})`,
    };
  const res = await transmit(READ_NDEF_FILE, 258);
  if (sw(res) !== 0x9000) {
    return {
      kind: 'error',
      code: 'secure-read-failed',
      reason:
        `the card refused to give its SUN message (status ${hexSw(sw(res))}): its tap counter may be used ` +
        'up or its file settings changed; re-personalise or replace the card',
    };
  }
  const data = res.subarray(0, res.length - 2);
  if (data.length < 2) return { kind: 'none' };
  const nlen = data.readUInt16BE(0);
  const text = data.subarray(2, 2 + nlen).toString('latin1');
  const m = SUN_PARAMS.exec(text);
  if (!m) return { kind: 'none' };
  const picc = (m[1] as string).toUpperCase();
  const mac = (m[2] as string).toUpperCase();
  if (/^0+$/.test(picc) && /^0+$/.test(mac)) return { kind: 'none' }; // a template, SDM not switched on
  return { kind: 'proof', proof: { kind: 'ntag424-sun', picc, mac } };
}
