/**
 * AES-128 key diversification per NXP AN10922 (section 2.2): a card key is the CMAC of
 * 0x01 || M under the master key, M = diversification input (1..31 bytes), with the input padded
 * to 32 bytes (80 00 ...) and K2 used whenever padding was added, K1 otherwise.
 */
import { aesCmacPadded } from './aes.js';

export function diversifyAes128(masterKey: Uint8Array, m: Uint8Array): Buffer {
  if (m.length < 1 || m.length > 31)
    throw new Error(`AN10922 diversification input must be 1..31 bytes, got ${m.length}`);
  return aesCmacPadded(masterKey, Buffer.concat([Buffer.from([0x01]), m]), 32);
}

/** What the project's diversification input names: the system (fleet) and the key's slot. */
export const SYSTEM_IDENTIFIER = Buffer.from('visittag', 'ascii');

/**
 * The card key for key number `keyNo` of the card with this UID: M = UID || keyNo || system id.
 * Every card gets its own keys, so one card's keys say nothing about another's.
 */
export function cardKey(masterKey: Uint8Array, uid: Uint8Array, keyNo: number): Buffer {
  return diversifyAes128(masterKey, Buffer.concat([uid, Buffer.from([keyNo]), SYSTEM_IDENTIFIER]));
}

/**
 * A key shared by the whole fleet (not per card): the SDM meta read key must be, because the UID
 * is what it decrypts. M = 0xFF || keyNo || system id (0xFF never starts a 4/7/10-byte NFC UID input
 * of the same length, so it cannot collide with a card key).
 */
export function sharedCardKey(masterKey: Uint8Array, keyNo: number): Buffer {
  return diversifyAes128(masterKey, Buffer.concat([Buffer.from([0xff, keyNo]), SYSTEM_IDENTIFIER]));
}
