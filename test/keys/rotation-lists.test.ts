/**
 * Card lists during a fleet-key rotation's transition (issue 16, docs/security.md "Fleet-key rotation"): while the
 * old key is in retiredFleetKeys, a reader not yet provisioned again keeps accepting the same cards offline. A
 * sealed reader is pushed its references under its new and its old reader key; a fleet-key reader the new and the
 * old fleet pseudonyms. Without retired keys the lists are as before a rotation (new form only).
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GatewayCardKeys, pseudonymiseCard, readerCardRef } from '../../protocol/index.js';
import { CARD_UID_VAULT_FILE, CardUidVault, cardListsFor } from '../../gateway/src/cards/uid-vault.js';
import { tempDir } from '../gateway/helpers.js';

const K0 = 'rotation-lists-fleet-key-old-0123456789';
const K1 = 'rotation-lists-fleet-key-new-9876543210';
const UID = '04A1B2C3D4E5F6';

describe('card lists while a rotated-out key is retired', () => {
  const tmp = tempDir('vt-rotation-lists-');
  afterAll(() => tmp.cleanup());

  it('carry the old forms too while retiredFleetKeys is set, and only the new ones without it', () => {
    const file = join(tmp.dir, CARD_UID_VAULT_FILE);
    const transition = new CardUidVault(file, new GatewayCardKeys(K1, [K0]));
    transition.learn([UID]);
    const c1New = pseudonymiseCard(UID, K1);
    const c1Old = pseudonymiseCard(UID, K0);
    const newKr = new GatewayCardKeys(K1).readerKey('rdr-l-1');
    const oldKr = new GatewayCardKeys(K0).readerKey('rdr-l-1');

    const sealed = cardListsFor(transition, () => 'sealed-v1')('rdr-l-1', [c1New]);
    expect(sealed.missing).toBe(0);
    expect(sealed.refs).toEqual([readerCardRef(UID, newKr), readerCardRef(UID, oldKr)].sort());
    expect(cardListsFor(transition, () => 'fleet-key')('rdr-l-1', [c1New]).refs).toEqual([c1New, c1Old]);

    const after = new CardUidVault(file, new GatewayCardKeys(K1)); // retiredFleetKeys removed
    expect(cardListsFor(after, () => 'sealed-v1')('rdr-l-1', [c1New]).refs).toEqual([
      readerCardRef(UID, newKr),
    ]);
    expect(cardListsFor(after, () => 'fleet-key')('rdr-l-1', [c1New]).refs).toEqual([c1New]);
  });
});
