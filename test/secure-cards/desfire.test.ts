/**
 * DESFire EV2/EV3 AES authentication against the virtual DESFire applet (direct APDUs, no PC/SC):
 * the right key yields the card's real UID through GetCardUID in CommMode.Full; a wrong key, a
 * missing application and a plain card are refused with a clear reason.
 */
import { describe, expect, it } from 'vitest';
import { authenticateDesfire } from '../../device/src/drivers/desfire-auth.js';
import { cardKey } from '../../protocol/index.js';
import { VirtualDesfire } from '../pcsc/virtual-desfire.js';
import { MASTER } from './helpers.js';

const UID = Buffer.from('04112233445566', 'hex');
const AID = Buffer.from('F56A01', 'hex');

function card(): { chip: VirtualDesfire; key: Buffer } {
  const key = cardKey(MASTER, UID, 1);
  const chip = new VirtualDesfire(UID, new Map([['F56A01', [Buffer.alloc(16), key]]]));
  chip.powerOn();
  return { chip, key };
}

describe('DESFire EV2 AES authentication (virtual card)', () => {
  it('the right key: mutual authentication, then the real UID under the session keys', async () => {
    const { chip, key } = card();
    const r = await authenticateDesfire((a) => Promise.resolve(chip.respond(a)), { aid: AID, keyNo: 1, key });
    expect(r).toEqual({ ok: true, uid: UID });
    expect(chip.log.map((a) => a.subarray(0, 2).toString('hex'))).toEqual(['905a', '9071', '90af', '9051']);
  });

  it('a wrong key is refused by the card (91AE), a missing application is named', async () => {
    const { chip } = card();
    const t = (a: Buffer) => Promise.resolve(chip.respond(a));
    const wrong = await authenticateDesfire(t, { aid: AID, keyNo: 1, key: Buffer.alloc(16, 3) });
    expect(wrong).toMatchObject({ ok: false, code: 'auth-failed' });
    expect(!wrong.ok && wrong.reason).toMatch(/91AE.*wrong key/);
    const none = await authenticateDesfire(t, {
      aid: Buffer.from('000001', 'hex'),
      keyNo: 1,
      key: Buffer.alloc(16),
    });
    expect(none).toMatchObject({ ok: false, code: 'no-application' });
  });
});
