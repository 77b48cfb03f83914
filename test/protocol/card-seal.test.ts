import { describe, expect, it } from 'vitest';
import {
  GatewayCardKeys,
  pseudonymiseCard,
  readerCardRef,
  sealCardUid,
  SEALED_CARD_PATTERN,
  TapEvent,
} from '../../protocol/index.js';

const FLEET = 'test-fleet-key-0123456789';
const gw = new GatewayCardKeys(FLEET);

describe('sealed cards (issue 16, docs/security.md "Key exposure")', () => {
  it('a sealed UID opens only at the gateway, for the reader it was sealed for', () => {
    for (const uid of ['04AABBCC', '04AABBCCDDEE01', '04AABBCCDDEE0102030A']) {
      const s1 = sealCardUid(uid, gw.publicKey, 'rdr-a');
      const s2 = sealCardUid(uid, gw.publicKey, 'rdr-a');
      expect(s1).toMatch(SEALED_CARD_PATTERN); // one length for 4, 7 and 10 byte UIDs
      expect(s1).not.toBe(s2); // randomised: two seals of one card cannot be linked
      expect(s1.toUpperCase()).not.toContain(uid);
      expect(gw.unseal(s1, 'rdr-a')).toEqual({ ok: true, uid });
      expect(gw.unseal(s2, 'rdr-a')).toEqual({ ok: true, uid });
      // copied into another reader's batch, it does not open
      expect(gw.unseal(s1, 'rdr-b')).toMatchObject({ ok: false, reason: 'invalid' });
    }
  });

  it('a tampered seal is invalid; a seal to another gateway key is told apart (unknown-key)', () => {
    const s = sealCardUid('04AABBCCDDEE01', gw.publicKey, 'rdr-a');
    const body = Buffer.from(s.slice(3), 'base64url');
    body[70] = (body[70] ?? 0) ^ 1;
    expect(gw.unseal(`s1_${body.toString('base64url')}`, 'rdr-a')).toMatchObject({
      ok: false,
      reason: 'invalid',
    });
    const other = new GatewayCardKeys('another-fleet-key-987654321');
    expect(other.unseal(s, 'rdr-a')).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(gw.unseal('s1_short', 'rdr-a')).toMatchObject({ ok: false, reason: 'invalid' });
  });

  it("each reader's key gives its own references: unlinkable across readers and not the fleet pseudonym", () => {
    const uid = '04AABBCCDDEE01';
    const a = gw.readerCardKeys('rdr-a');
    const b = gw.readerCardKeys('rdr-b');
    expect(a.gatewayKey).toBe(b.gatewayKey);
    expect(a.readerKey).not.toBe(b.readerKey);
    const ra = readerCardRef(uid, a.readerKey);
    expect(ra).toBe(gw.readerRef('rdr-a', uid));
    expect(ra).not.toBe(readerCardRef(uid, b.readerKey));
    expect(ra.slice(3)).not.toBe(pseudonymiseCard(uid, FLEET).slice(3));
    expect(gw.fleetRef(uid)).toBe(pseudonymiseCard(uid, FLEET)); // the same c1_ as a fleet-key reader's
    // the keys derive from the fleet key: the same on every gateway instance, different for another fleet
    expect(new GatewayCardKeys(FLEET).readerCardKeys('rdr-a')).toEqual(a);
    expect(new GatewayCardKeys('another-fleet-key-987654321').readerKey('rdr-a')).not.toBe(a.readerKey);
  });

  it('opens a seal made by an independent implementation of the documented derivations (known answer)', () => {
    // Made with Python's `cryptography` (X25519, HKDF-SHA256, AES-GCM) from the fleet key below, as
    // protocol/README.md "Sealed cards" and docs/security.md describe; the same vector is the README example.
    const k = new GatewayCardKeys('example-fleet-key-0123456789');
    expect(k.publicKey).toBe('QEkS38st4SdrCM5JCLq-G8Ty2yLl4bcVJz7WVpxfzmA');
    expect(k.readerKey('rdr-0042')).toBe('RIsR28Ji2K7G8kOV0B2LorJTaaXFcKdqNC7BQSyICC4');
    const sealed =
      's1_51CiigHzOAjdylCPELN930-l7WV45e6tAk8XI_wb_06xHIAPp7f_CoE_EF6ipq6QwSRd7Fd8209EHE_PN6L8Q7A-2q1yGmmjR4hF6JVLzw';
    expect(k.unseal(sealed, 'rdr-0042')).toEqual({ ok: true, uid: '04A1B2C3D4E5F6' });
    expect(k.readerRef('rdr-0042', '04A1B2C3D4E5F6')).toBe('r1_7f8b42b132bac0d48cdedefe9b027d84');
    expect(k.fleetRef('04A1B2C3D4E5F6')).toBe('c1_a07b1f004e770f5967fe5e8466170f77');
  });

  it('the wire: an r1_ card needs its sealed card, a c1_ card takes none', () => {
    const uid = '04AABBCCDDEE01';
    const base = {
      readerId: 'rdr-a',
      seq: 1,
      eventId: 'e1',
      decision: 'start',
      visitId: 'v1',
      time: { wallMs: 1_765_000_000_000, bootId: 'b1', monoMs: 5, synced: true },
    };
    const sealed = sealCardUid(uid, gw.publicKey, 'rdr-a');
    const r1 = gw.readerRef('rdr-a', uid);
    expect(TapEvent.safeParse({ ...base, card: r1, sealedCard: sealed }).success).toBe(true);
    expect(TapEvent.safeParse({ ...base, card: r1 }).success).toBe(false);
    expect(TapEvent.safeParse({ ...base, card: gw.fleetRef(uid), sealedCard: sealed }).success).toBe(false);
    expect(TapEvent.safeParse({ ...base, card: gw.fleetRef(uid) }).success).toBe(true);
  });
});
