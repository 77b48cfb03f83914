import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CARD_REF_PATTERN, normalizeUid, pseudonymiseCard } from '../../protocol/index.js';

const KEY = 'fleet-key-for-tests-0123456789';

describe('normalizeUid', () => {
  it.each([
    ['4-byte', 'a1:b2:c3:d4', 'A1B2C3D4'],
    ['7-byte', '04 a2 3b 4c 5d 6e 80', '04A23B4C5D6E80'],
    ['10-byte', '04-11-22-33-44-55-66-77-88-99', '04112233445566778899'],
    ['bytes', Uint8Array.from([0xde, 0xad, 0xbe, 0xef]), 'DEADBEEF'],
    ['leading zeros kept', '0001020304050F', '0001020304050F'],
  ])('%s', (_name, input, expected) => {
    expect(normalizeUid(input)).toEqual({ ok: true, uid: expected });
  });

  it.each([
    ['5 bytes', 'A1B2C3D4E5', /4, 7 or 10 bytes, got 5/],
    ['empty', '', /got 0/],
    ['odd digits', 'A1B2C3D', /odd number/],
    ['non-hex', 'A1B2C3DG', /hexadecimal/],
    ['all zeros', '00000000', /failed read/],
    ['all FF', 'FFFFFFFFFFFFFF', /failed read/],
    ['huge', 'A'.repeat(1000), /too long/],
  ])('rejects %s', (_name, input, reason) => {
    const r = normalizeUid(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });

  it('property: any 4/7/10 bytes normalise to 2·n uppercase hex digits, MSB first, idempotently', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4, 7, 10).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.constantFrom('', ':', ' ', '-'),
        (raw, sep) => {
          fc.pre(!raw.every((b) => b === 0) && !raw.every((b) => b === 0xff));
          const hex = [...raw].map((b) => b.toString(16).padStart(2, '0')).join(sep);
          const a = normalizeUid(hex);
          const b = normalizeUid(raw);
          expect(a).toEqual(b);
          if (!a.ok) throw new Error(a.reason);
          expect(a.uid).toMatch(new RegExp(`^[0-9A-F]{${raw.length * 2}}$`));
          expect(parseInt(a.uid.slice(0, 2), 16)).toBe(raw[0]);
          expect(normalizeUid(a.uid)).toEqual(a);
        },
      ),
    );
  });

  it('property: other lengths are always rejected', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 16 }).filter((u) => ![4, 7, 10].includes(u.length)),
        (raw) => {
          expect(normalizeUid(raw).ok).toBe(false);
        },
      ),
    );
  });
});

describe('pseudonymiseCard', () => {
  it('is keyed, stable, separator-insensitive and of the cardRef shape', () => {
    const a = pseudonymiseCard('04:a2:3b:4c:5d:6e:80', KEY);
    expect(a).toMatch(CARD_REF_PATTERN);
    expect(pseudonymiseCard('04A23B4C5D6E80', KEY)).toBe(a);
    expect(pseudonymiseCard('04A23B4C5D6E80', `${KEY}-other`)).not.toBe(a);
    expect(a).not.toContain('04A23B');
  });

  it('refuses invalid UIDs and short keys', () => {
    expect(() => pseudonymiseCard('123', KEY)).toThrow(/invalid UID/);
    expect(() => pseudonymiseCard('A1B2C3D4', 'short')).toThrow(/at least 16 bytes/);
  });

  it('property: distinct UIDs give distinct refs', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 7, maxLength: 7 }),
        fc.uint8Array({ minLength: 7, maxLength: 7 }),
        (x, y) => {
          fc.pre(normalizeUid(x).ok && normalizeUid(y).ok && Buffer.compare(x, y) !== 0);
          const ux = normalizeUid(x);
          const uy = normalizeUid(y);
          if (!ux.ok || !uy.ok) return;
          expect(pseudonymiseCard(ux.uid, KEY)).not.toBe(pseudonymiseCard(uy.uid, KEY));
        },
      ),
      { numRuns: 200 },
    );
  });
});
