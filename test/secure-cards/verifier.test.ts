/**
 * The gateway's secure-card verification over a real SQLite file, with SUN messages produced by the
 * virtual NTAG 424 DNA after it was personalised through its APDUs (no PC/SC here; the same flow over
 * the real pcscd stack is in pcsc-secure.test.ts).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSecureProof } from '../../device/src/drivers/secure-read.js';
import { loadSecureKeyFile, SecureCardKeys } from '../../gateway/src/secure-cards/keys.js';
import { SecureCardPolicy } from '../../gateway/src/secure-cards/policy.js';
import {
  createSqliteSecureCardStore,
  type SqliteSecureCardStore,
} from '../../gateway/src/store/sqlite/secure-cards.js';
import { SecureCardVerifier } from '../../gateway/src/secure-cards/verifier.js';
import { SDM_COUNTER_MAX } from '../../protocol/index.js';
import { VirtualNtag424 } from '../pcsc/virtual-ntag424.js';
import { direct, FLEET_KEY, MASTER, personalisedCard, tapEvent, tapProof } from './helpers.js';

const UID = '04A1B2C3D4E5F6';
const logger = pino({ level: 'silent' });

describe('secure-card verifier', () => {
  let dir: string;
  let db: Database.Database;
  let store: SqliteSecureCardStore;
  let policy: SecureCardPolicy;
  let v: SecureCardVerifier;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'visittag-secure-'));
    db = new Database(path.join(dir, 'gateway.db'));
    store = createSqliteSecureCardStore(db);
    policy = SecureCardPolicy.parse({});
    v = new SecureCardVerifier({
      keys: new SecureCardKeys(MASTER),
      store,
      policy: () => policy,
      fleetKey: FLEET_KEY,
      logger,
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a fresh SUN message, answers a resend of the same event the same, refuses a replay', async () => {
    const card = await personalisedCard(UID);
    const proof = await tapProof(card);
    const e = tapEvent(UID, proof);
    expect(v.assess('rdr-0001', null, e, 1)).toMatchObject({
      assurance: 'secure',
      verdict: 'accepted',
      counter: 1,
    });
    expect(v.assess('rdr-0001', null, e, 2)).toMatchObject({ verdict: 'accepted', counter: 1 }); // device resend
    const replay = v.assess('rdr-0001', null, tapEvent(UID, proof), 3);
    expect(replay).toMatchObject({ verdict: 'refused', code: 'replayed' });
    expect(replay?.detail).toContain('counter 1 was already used');
    expect(v.assess('rdr-0001', null, tapEvent(UID, await tapProof(card)), 4)).toMatchObject({
      verdict: 'accepted',
      counter: 2,
    });
    expect(store.card(tapEvent(UID).card)?.lastCounter).toBe(2);
  });

  it('refuses an older message (counter lower than the last accepted)', async () => {
    const card = await personalisedCard(UID);
    const old = await tapProof(card);
    const newer = await tapProof(card);
    expect(v.assess('rdr-0001', null, tapEvent(UID, newer), 1)?.verdict).toBe('accepted');
    expect(v.assess('rdr-0001', null, tapEvent(UID, old), 2)).toMatchObject({
      verdict: 'refused',
      code: 'counter-backwards',
    });
  });

  it('counter rollover (a card counting from 0 again) is refused with a clear error', async () => {
    const card = await personalisedCard(UID);
    card.counter = 500;
    expect(v.assess('rdr-0001', null, tapEvent(UID, await tapProof(card)), 1)?.counter).toBe(501);
    card.counter = 0; // rolled over / reset
    const r = v.assess('rdr-0001', null, tapEvent(UID, await tapProof(card)), 2);
    expect(r).toMatchObject({ verdict: 'refused', code: 'counter-backwards' });
    expect(r?.detail).toMatch(/went backwards \(1 after 501\).*re-personalise or replace the card/);
  });

  it('a card at the end of its counter: last tap flagged, then the card refuses to read (device error)', async () => {
    const card = await personalisedCard(UID);
    card.counter = SDM_COUNTER_MAX - 1;
    expect(v.assess('rdr-0001', null, tapEvent(UID, await tapProof(card)), 1)).toMatchObject({
      verdict: 'flagged',
      code: 'counter-exhausted',
    });
    card.powerOn();
    const r = await readSecureProof(direct(card));
    expect(r).toMatchObject({ kind: 'error', code: 'secure-read-failed' });
    expect(r.kind === 'error' && r.reason).toMatch(/counter may be used up.*re-personalise or replace/);
  });

  it('a card personalised under another master key: wrong key, clear refusal', async () => {
    const card = await personalisedCard(UID, Buffer.alloc(16, 0x42));
    const r = v.assess('rdr-0001', null, tapEvent(UID, await tapProof(card)), 1);
    expect(r).toMatchObject({ assurance: 'secure', verdict: 'refused', code: 'bad-picc-data' });
    expect(r?.detail).toMatch(/wrong key file/);
    // same meta key, other file read key (key 1) on the card: the MAC fails
    const c2 = await personalisedCard(UID);
    c2.keys[1] = Buffer.alloc(16, 9);
    expect(v.assess('rdr-0001', null, tapEvent(UID, await tapProof(c2)), 2)).toMatchObject({
      code: 'bad-mac',
    });
  });

  it('a SUN message carried with another UID (copied card + recorded message) is refused', async () => {
    const card = await personalisedCard(UID);
    const r = v.assess('rdr-0001', null, tapEvent('04000000000001', await tapProof(card)), 1);
    expect(r).toMatchObject({ verdict: 'refused', code: 'uid-mismatch' });
  });

  it('UID clone of a known secure card: refused by default, flagged where the client policy says so', async () => {
    const card = await personalisedCard(UID);
    v.assess('rdr-0001', null, tapEvent(UID, await tapProof(card)), 1);
    expect(v.assess('rdr-0001', 'client-a', tapEvent(UID), 2)).toMatchObject({
      assurance: 'uid-only',
      verdict: 'refused',
      code: 'clone-suspect',
    });
    policy = SecureCardPolicy.parse({ clients: { 'client-b': { clone: 'flag' } } });
    expect(v.assess('rdr-0002', 'client-b', tapEvent(UID), 3)).toMatchObject({
      verdict: 'flagged',
      code: 'clone-suspect',
    });
  });

  it('plain UID cards: accepted, flagged or refused per fleet and client policy', () => {
    const plain = '11223344';
    expect(v.assess('rdr-0001', null, tapEvent(plain), 1)).toMatchObject({
      assurance: 'uid-only',
      verdict: 'accepted',
    });
    policy = SecureCardPolicy.parse({ uidOnly: 'flag', clients: { strict: { uidOnly: 'refuse' } } });
    expect(v.assess('rdr-0001', 'other', tapEvent(plain), 2)?.verdict).toBe('flagged');
    expect(v.assess('rdr-0001', 'strict', tapEvent(plain), 3)).toMatchObject({
      verdict: 'refused',
      code: 'uid-only-refused',
    });
    expect(store.countByAssurance()).toEqual([
      { assurance: 'uid-only', verdict: 'accepted', count: 1 },
      { assurance: 'uid-only', verdict: 'flagged', count: 1 },
      { assurance: 'uid-only', verdict: 'refused', count: 1 },
    ]);
  });

  it('a blank card (SDM off) gives no proof: UID-only', async () => {
    const card = new VirtualNtag424(Buffer.from(UID, 'hex'));
    card.powerOn();
    expect(await readSecureProof(direct(card))).toEqual({ kind: 'none' });
  });
});

describe('secure-card key file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'visittag-keys-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a 0600 file; refuses a group/world-readable one with the fix; never shows the key', () => {
    const f = path.join(dir, 'secure-cards.key');
    const hex = MASTER.toString('hex');
    writeFileSync(f, JSON.stringify({ version: 1, masterKey: hex }), { mode: 0o600 });
    const keys = loadSecureKeyFile(f);
    expect(inspect(keys)).not.toContain(hex.slice(0, 8));
    expect(JSON.stringify({ keys })).not.toContain(hex.slice(0, 8));
    chmodSync(f, 0o644);
    expect(() => loadSecureKeyFile(f)).toThrow(/mode 644.*Fix: chmod 600/);
    chmodSync(f, 0o600);
    writeFileSync(f, JSON.stringify({ version: 1, masterKey: 'zz' }));
    let msg = '';
    try {
      loadSecureKeyFile(f);
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toMatch(/masterKey: must be 32 hex/);
  });
});
