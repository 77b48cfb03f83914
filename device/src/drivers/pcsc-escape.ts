import type { Reader as NfcReader } from 'nfc-pcsc';

const ESCAPE_MAX_RESPONSE = 258;

/**
 * Sends a reader command (LED, buzzer, configuration). With a card connected, ACR122-class readers
 * take FF-class pseudo-APDUs through SCardTransmit, which needs no ccid driver option; everything
 * else goes through SCardControl(IOCTL_CCID_ESCAPE), on a direct connection when no card is there
 * (libccid allows that only with ifdDriverOptions 0x0001: see device/HARDWARE.md).
 */
export async function sendEscape(r: NfcReader, apdu: Buffer): Promise<Buffer> {
  if (r.connection) {
    return apdu[0] === 0xff ? r.transmit(apdu, ESCAPE_MAX_RESPONSE) : r.control(apdu, ESCAPE_MAX_RESPONSE);
  }
  await r.connect('CONNECT_MODE_DIRECT');
  try {
    return await r.control(apdu, ESCAPE_MAX_RESPONSE);
  } finally {
    await r.disconnect().catch(() => undefined);
  }
}

/** nfc-pcsc wraps the PC/SC error in `previous`; keep both messages. */
export function describePcscError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const prev = (err as Error & { previous?: unknown }).previous;
  return prev instanceof Error ? `${err.message} (${prev.message})` : err.message;
}
