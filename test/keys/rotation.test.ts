/**
 * Fleet-key (pseudonym) rotation without losing continuity in reports (issue 16; docs/security.md "Fleet-key
 * rotation"). A real gateway (SQLite file, embedded broker on loopback), readers publishing over MQTT, the real
 * CLIs (`cards import`, `keys rotate`, `report`).
 *
 * The same two weeks of taps are run twice: once under one fleet key throughout (the control), once with a rotation
 * in the middle (gateway stopped, `keys rotate`, restarted on the new key with the old one retired). After the
 * rotation the taps come as they would in the field: a reader provisioned again sends the new pseudonyms, its
 * journal still holds a tap pseudonymised before the rotation (sent late), a fleet-key reader not yet provisioned
 * again still sends old pseudonyms, and a sealed reader not yet provisioned again seals to the old gateway key
 * with its old reader key. The continuity report (people per client over 14 days) and the executed report per
 * client, and every visit's staff member, must equal the control's. Without the mapping (its rows deleted after
 * the rotation) they differ: the test shows that too.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GatewayCardKeys,
  pseudonymiseCard,
  readerCardRef,
  sealCardUid,
  type TapEvent,
} from '../../protocol/index.js';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main } from '../../gateway/main.js';
import { staleFleetKeyProblem } from '../../gateway/src/keys/cli.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import {
  AckCollector,
  batchOf,
  connectReader,
  PASSWORD,
  silent,
  tapEvent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

const K0 = 'rotation-test-fleet-key-old-0123456789';
const K1 = 'rotation-test-fleet-key-new-9876543210';
const U1 = '04A1B2C3D4E5F6'; // staff-rot-1's card
const U2 = '04112233445566'; // staff-rot-2's card
const U3 = '04998877665544'; // a card registered to nobody (its UID learned from a sealed tap)
const U4 = '04556677889900'; // staff-rot-3's card: client A meets them once, in a tap sent late
const R1 = 'rdr-rot-1'; // client A: fleet-key reader, provisioned again after the rotation
const R2 = 'rdr-rot-2'; // client B: fleet-key reader NOT provisioned again (old key)
const R3 = 'rdr-rot-3'; // client C: sealed reader NOT provisioned again (old reader key, old seal key)
const MONDAY = Date.UTC(2026, 10, 16, 7, 0); // 2026-11-16 08:00 Stockholm
const DAY = 86_400_000;

type Tap = {
  reader: string;
  uid: string;
  day: number;
  hour: number;
  decision: 'start' | 'stop';
  visit: string;
};

/**
 * Client A (reader R1) is in the continuity measure's population: 65+, personal care, two visits every day of
 * the 14 days (08:00 by staff-rot-1, 14:00 by staff-rot-2), both planned. The rotation falls on the evening of
 * day 6; day 6's afternoon visit was journalled before it and is sent after it (old pseudonym).
 */
const twoADay = (day: number): Tap[] => [
  { reader: R1, uid: U1, day, hour: 0, decision: 'start', visit: `a${day}m` },
  { reader: R1, uid: U1, day, hour: 1, decision: 'stop', visit: `a${day}m` },
  { reader: R1, uid: U2, day, hour: 6, decision: 'start', visit: `a${day}a` },
  { reader: R1, uid: U2, day, hour: 7, decision: 'stop', visit: `a${day}a` },
];
const days = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** The taps before the rotation point (all under the old key in both runs). */
const BEFORE: Tap[] = [
  ...days(0, 5).flatMap(twoADay),
  ...twoADay(6).slice(0, 2),
  { reader: R1, uid: U1, day: 6, hour: 10, decision: 'start', visit: 'a6e' }, // open across the rotation
  { reader: R2, uid: U2, day: 0, hour: 2, decision: 'start', visit: 'b1' },
  { reader: R2, uid: U2, day: 0, hour: 3, decision: 'stop', visit: 'b1' },
  { reader: R3, uid: U3, day: 1, hour: 2, decision: 'start', visit: 'c1' },
  { reader: R3, uid: U3, day: 1, hour: 3, decision: 'stop', visit: 'c1' },
];
/** Journalled on R1 before the rotation, sent after it (old pseudonym): day 6's afternoon, by staff-rot-3. */
const LATE: Tap[] = twoADay(6)
  .slice(2)
  .map((t) => ({ ...t, uid: U4 }));
/** After the rotation point. */
const AFTER: Tap[] = [
  { reader: R1, uid: U1, day: 6, hour: 11, decision: 'stop', visit: 'a6e' },
  ...days(7, 13).flatMap(twoADay),
  { reader: R2, uid: U1, day: 8, hour: 0, decision: 'start', visit: 'b2' },
  { reader: R2, uid: U1, day: 8, hour: 1, decision: 'stop', visit: 'b2' },
  { reader: R2, uid: U2, day: 9, hour: 0, decision: 'start', visit: 'b3' },
  { reader: R2, uid: U2, day: 9, hour: 1, decision: 'stop', visit: 'b3' },
  { reader: R3, uid: U2, day: 8, hour: 2, decision: 'start', visit: 'c2' },
  { reader: R3, uid: U2, day: 8, hour: 3, decision: 'stop', visit: 'c2' },
  { reader: R3, uid: U3, day: 9, hour: 2, decision: 'start', visit: 'c3' },
  { reader: R3, uid: U3, day: 9, hour: 3, decision: 'stop', visit: 'c3' },
  // the card registered to nobody, at the fleet-key reader still on the old key
  { reader: R2, uid: U3, day: 10, hour: 0, decision: 'start', visit: 'b4' },
  { reader: R2, uid: U3, day: 10, hour: 1, decision: 'stop', visit: 'b4' },
];
const VISITS = new Set([...BEFORE, ...LATE, ...AFTER].map((t) => `${t.reader}-${t.visit}`)).size;

const REGISTRY = {
  providers: [{ providerId: 'kommunen', name: 'Hemtjänsten', kind: 'municipal' }],
  areas: [{ areaId: 'rot', name: 'Området', lateAfterMinutes: 20, missedAfterMinutes: 90 }],
  teams: [{ teamId: 'rot-1', areaId: 'rot', name: 'Grupp 1' }],
  clients: [
    {
      clientRef: 'client-rot-a',
      areaId: 'rot',
      teamId: 'rot-1',
      providerId: 'kommunen',
      birthYear: 1938,
      decisionTypes: ['personal-care'],
      activeFrom: '2025-01-01',
    },
  ],
  staff: ['staff-rot-1', 'staff-rot-2', 'staff-rot-3'].map((staffRef) => ({
    staffRef,
    teamId: 'rot-1',
    areaId: 'rot',
    category: 'care',
    activeFrom: '2024-08-01',
  })),
  serviceCodes: [{ code: 'HYG', label: 'Personlig hygien', kind: 'personal-care', standardMinutes: 60 }],
};
const PLAN = [
  'client_ref,date,start,planned_minutes,service_codes,staff_count,staff',
  ...days(0, 13).flatMap((d) => {
    const date = new Date(MONDAY + d * DAY).toISOString().slice(0, 10);
    return [
      `client-rot-a,${date},08:00,60,HYG,1,staff-rot-1`,
      `client-rot-a,${date},14:00,60,HYG,1,staff-rot-2`,
    ];
  }),
].join('\n');

/** How a reader names a card: its fleet key (R1 after re-provisioning: the new one) or its sealed keys. */
function event(t: Tap, seq: number, key: string): TapEvent {
  const base = tapEvent(t.reader, seq, {
    decision: t.decision,
    visitId: `${t.reader}-${t.visit}`,
    time: {
      wallMs: MONDAY + t.day * DAY + t.hour * 3_600_000,
      bootId: 'boot-1',
      monoMs: seq * 1000,
      synced: true,
    },
  });
  if (t.reader !== R3) return { ...base, card: pseudonymiseCard(t.uid, key) };
  const keys = new GatewayCardKeys(key);
  return {
    ...base,
    card: readerCardRef(t.uid, keys.readerKey(t.reader)),
    sealedCard: sealCardUid(t.uid, keys.publicKey, t.reader),
  };
}

interface Outcome {
  continuity: unknown;
  executed: unknown;
  /** visit → staff member (or 'card' when none), per reader */
  staff: Record<string, string>;
  exit: number;
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    args,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const stripVolatile = (text: string): unknown =>
  JSON.parse(text, (k, v: unknown) => (k === 'generatedAt' || k === 'generatedAtMs' ? undefined : v));

/**
 * One run of the two weeks. `rotate`: stop after BEFORE, rotate to K1, restart with K0 retired. `dropMap`:
 * delete the mapping after the rotation (what the product would do without it).
 */
async function scenario(dir: string, rotate: boolean, dropMap = false): Promise<Outcome> {
  const gwDir = join(dir, 'gw');
  mkdirSync(gwDir, { recursive: true });
  const cfgFile = join(dir, 'gateway.json');
  const writeConfig = (fleetKey: string, retired?: string[]) =>
    writeFileSync(
      cfgFile,
      JSON.stringify({
        ...testConfig(gwDir),
        fleetKey,
        ...(retired ? { retiredFleetKeys: retired } : {}),
      }),
    );
  writeConfig(K0);
  const csv = join(dir, 'cards.csv');
  writeFileSync(csv, `staff,uid\nstaff-rot-1,${U1}\nstaff-rot-2,${U2}\nstaff-rot-3,${U4}\n`);
  const imported = await cli(['cards', 'import', csv, '--config', cfgFile]);
  expect(imported.code, imported.err).toBe(0);
  const registry = join(dir, 'registry.json');
  writeFileSync(registry, JSON.stringify(REGISTRY));
  const reg = await cli(['plan', 'registry', registry, '--config', cfgFile]);
  expect(reg.code, reg.err).toBe(0);
  const plan = join(dir, 'plan.csv');
  writeFileSync(plan, `${PLAN}\n`);
  const planned = await cli([
    'plan',
    'import',
    plan,
    '--area',
    'rot',
    '--from',
    '2026-11-16',
    '--to',
    '2026-11-29',
    '--config',
    cfgFile,
  ]);
  expect(planned.code, planned.err).toBe(0);

  let gw: Gateway | null = null;
  const start = async () => {
    const config = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    gw = createGateway({ config: testConfig(gwDir, config), logger: silent });
    trackDataDir(gw, gwDir);
    await gw.start();
    return gw;
  };
  const seqs = new Map<string, number>();
  const send = async (g: Gateway, taps: Tap[], keyOf: (reader: string) => string) => {
    for (const reader of [R1, R2, R3]) {
      const mine = taps.filter((t) => t.reader === reader);
      if (!mine.length) continue;
      const first = (seqs.get(reader) ?? 0) + 1;
      const events = mine.map((t, i) => event(t, first + i, keyOf(reader)));
      seqs.set(reader, first + mine.length - 1);
      const client = await connectReader(g.mqttPort ?? 0, reader);
      try {
        const acks = await AckCollector.attach(client, reader);
        await acks.publish(reader, { ...batchOf(reader, []), events });
        await acks.waitFor((a) => a.upTo === seqs.get(reader));
      } finally {
        await client.endAsync();
      }
    }
    g.pipeline.processNow();
  };
  try {
    let g = await start();
    await g.registry.addReader({ readerId: R1, clientRef: 'client-rot-a', password: PASSWORD });
    await g.registry.addReader({ readerId: R2, clientRef: 'client-rot-b', password: PASSWORD });
    await g.registry.addReader({ readerId: R3, clientRef: 'client-rot-c', password: PASSWORD });
    await send(g, BEFORE, () => K0);
    await g.stop();
    gw = null;

    if (rotate) {
      const keyFile = join(dir, 'new-fleet-key');
      writeFileSync(keyFile, `${K1}\n`, { mode: 0o600 });
      const before = await cli(['report', 'continuity', '--from', '2026-11-16', '--config', cfgFile]);
      const r = await cli(['keys', 'rotate', '--new-fleet-key-file', keyFile, '--config', cfgFile]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/4 pseudonym\(s\) mapped, 3 registered card\(s\) rewritten/);
      // the same data, reported after the rotation: the same figures
      const after = await cli(['report', 'continuity', '--from', '2026-11-16', '--config', cfgFile]);
      expect(stripVolatile(after.out)).toEqual(stripVolatile(before.out));
      if (dropMap) {
        const db = openDatabase(join(gwDir, 'gateway.db'), []);
        db.exec('DELETE FROM card_ref_map');
        db.close();
      }
      writeConfig(K1, [K0]);
    }
    g = await start();
    const now = rotate ? K1 : K0;
    await send(g, LATE, () => K0); // journalled before the rotation point
    await send(g, AFTER, (reader) => (reader === R1 ? now : K0));
    await waitUntil(() => {
      g.pipeline.processNow();
      const db = openDatabase(join(gwDir, 'gateway.db'), []);
      const n = db.prepare("SELECT count(*) FROM visits WHERE state = 'closed'").pluck().get() as number;
      db.close();
      return n >= VISITS;
    }, 15_000);
    await g.stop();
    gw = null;

    const continuity = await cli(['report', 'continuity', '--from', '2026-11-16', '--config', cfgFile]);
    const executed = await cli([
      'report',
      'executed',
      '--from',
      '2026-11-16',
      '--to',
      '2026-11-29',
      '--period',
      'range',
      '--by',
      'client',
      '--config',
      cfgFile,
    ]);
    expect(continuity.code, continuity.err).toBe(0);
    expect(executed.code, executed.err).toBe(0);
    const db = openDatabase(join(gwDir, 'gateway.db'), []);
    const rows = db
      .prepare(
        'SELECT reader_id AS r, visit_id AS v, staff_ref AS s FROM visits ORDER BY reader_id, visit_id',
      )
      .all() as Array<{ r: string; v: string; s: string | null }>;
    db.close();
    return {
      continuity: stripVolatile(continuity.out),
      executed: stripVolatile(executed.out),
      staff: Object.fromEntries(rows.map((x) => [x.v, x.s ?? 'card'])),
      exit: 0,
    };
  } finally {
    await (gw as Gateway | null)?.stop().catch(() => undefined);
  }
}

describe('fleet-key rotation keeps reports and staff attribution', () => {
  const tmp = tempDir('vt-rotation-');
  afterAll(() => tmp.cleanup());

  it('the same continuity and executed figures and staff per visit as without a rotation', async () => {
    const control = await scenario(join(tmp.dir, 'control'), false);
    const rotated = await scenario(join(tmp.dir, 'rotated'), true);
    // the control attributes every tap of a registered card to its holder
    expect(control.staff).toMatchObject({
      [`${R1}-a0m`]: 'staff-rot-1',
      [`${R1}-a6a`]: 'staff-rot-3',
      [`${R1}-a6e`]: 'staff-rot-1',
      [`${R1}-a7m`]: 'staff-rot-1',
      [`${R2}-b2`]: 'staff-rot-1',
      [`${R3}-c2`]: 'staff-rot-2',
      [`${R3}-c3`]: 'card',
    });
    // client A met three staff members in the 14 days; 28 planned visits
    expect(control.continuity).toMatchObject({
      clients: 1,
      mean: 3,
      distribution: [{ staff: 3, clients: 1 }],
    });
    expect(control.executed).toMatchObject({
      rows: [{ clientRef: 'client-rot-a', plannedVisits: 28 }, {}, {}],
    });
    expect(rotated.staff).toEqual(control.staff);
    // the unregistered card assigned afterwards by the pseudonym an older report shows (the old one): it names
    // the card as it is now, and its visits under both pseudonyms are attributed
    const assigned = await cli([
      'cards',
      'assign',
      pseudonymiseCard(U3, K0),
      '--staff',
      'staff-rot-4',
      '--config',
      join(tmp.dir, 'rotated', 'gateway.json'),
    ]);
    expect(assigned.code, assigned.err).toBe(0);
    const rdb = openDatabase(join(tmp.dir, 'rotated', 'gw', 'gateway.db'), []);
    expect(rdb.prepare('SELECT card_ref FROM cards WHERE staff_ref = ?').pluck().all('staff-rot-4')).toEqual([
      pseudonymiseCard(U3, K1),
    ]);
    expect(
      rdb
        .prepare(`SELECT visit_id FROM visits WHERE staff_ref = 'staff-rot-4' ORDER BY visit_id`)
        .pluck()
        .all(),
    ).toEqual([`${R2}-b4`, `${R3}-c1`, `${R3}-c3`]);
    rdb.close();
    expect(rotated.continuity).toEqual(control.continuity);
    expect(rotated.executed).toEqual(control.executed);

    // without the mapping the late and old-key taps are unknown cards: other staff, other figures
    const unmapped = await scenario(join(tmp.dir, 'unmapped'), true, true);
    expect(unmapped.staff).toMatchObject({ [`${R1}-a6a`]: 'card', [`${R2}-b2`]: 'card' });
    // staff-rot-3's one visit is an unknown card's: client A's count drops from 3 to 2
    expect(unmapped.continuity).toMatchObject({ clients: 1, mean: 2 });
  }, 180_000);
});

describe('a tap sealed with the old keys after a rotation', () => {
  const tmp = tempDir('vt-rotation-sealed-');
  let gw: Gateway | null = null;
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    tmp.cleanup();
  });

  it('is kept on the reader (not stored, not acked) until the old key is retired in the config, then opens to the new pseudonym', async () => {
    const gwDir = join(tmp.dir, 'gw');
    const tap: Tap = { reader: R3, uid: U2, day: 8, hour: 0, decision: 'start', visit: 'x1' };
    const batch = { ...batchOf(R3, []), events: [event(tap, 1, K0)] };
    const stored = () => {
      const db = openDatabase(join(gwDir, 'gateway.db'), []);
      const rows = db
        .prepare('SELECT event_json FROM events WHERE reader_id = ?')
        .pluck()
        .all(R3) as string[];
      db.close();
      return rows.map((j) => (JSON.parse(j) as { card: string }).card);
    };
    // the new key only: the seal names a key this gateway lacks
    gw = createGateway({ config: testConfig(gwDir, { fleetKey: K1 }), logger: silent });
    trackDataDir(gw, gwDir);
    await gw.start();
    await gw.registry.addReader({ readerId: R3, clientRef: 'client-rot-c', password: PASSWORD });
    let client = await connectReader(gw.mqttPort ?? 0, R3);
    let acks = await AckCollector.attach(client, R3);
    await acks.publish(R3, batch);
    await new Promise((r) => setTimeout(r, 1500));
    expect(acks.acks.filter((a) => a.upTo >= 1)).toEqual([]);
    expect(stored()).toEqual([]);
    await client.endAsync();
    await gw.stop();
    // the old key retired in the config: the same tap (the reader resends it) opens, named under the new key
    gw = createGateway({
      config: testConfig(gwDir, { fleetKey: K1, retiredFleetKeys: [K0] }),
      logger: silent,
    });
    trackDataDir(gw, gwDir);
    await gw.start();
    client = await connectReader(gw.mqttPort ?? 0, R3);
    acks = await AckCollector.attach(client, R3);
    await acks.publish(R3, batch);
    await acks.waitFor((a) => a.upTo === 1);
    await client.endAsync();
    expect(stored()).toEqual([pseudonymiseCard(U2, K1)]);
  }, 60_000);
});

describe('keys rotate refuses what it cannot map', () => {
  const tmp = tempDir('vt-rotation-cli-');
  afterAll(() => tmp.cleanup());

  it('lists cards without a UID and refuses unless --drop-unmapped (revoked); refuses on PostgreSQL; refuses the same key', async () => {
    const gwDir = join(tmp.dir, 'gw');
    mkdirSync(gwDir, { recursive: true });
    const cfgFile = join(tmp.dir, 'gateway.json');
    writeFileSync(cfgFile, JSON.stringify({ ...testConfig(gwDir), fleetKey: K0 }));
    const csv = join(tmp.dir, 'cards.csv');
    writeFileSync(csv, `staff,uid\nstaff-rot-1,${U1}\n`);
    expect((await cli(['cards', 'import', csv, '--config', cfgFile])).code).toBe(0);
    const db = openDatabase(join(gwDir, 'gateway.db'), []);
    const noUid = pseudonymiseCard(U2, K0); // registered by reference only: no UID in the vault
    db.prepare('INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES (?, ?, NULL, 0)').run(
      noUid,
      'staff-rot-2',
    );
    db.close();
    const keyFile = join(tmp.dir, 'new-key');
    writeFileSync(keyFile, K1);
    const sameKey = join(tmp.dir, 'same-key');
    writeFileSync(sameKey, K0);

    expect(await cli(['keys', 'rotate', '--new-fleet-key-file', sameKey, '--config', cfgFile])).toMatchObject(
      {
        code: 65,
        err: expect.stringMatching(/nothing to rotate/) as unknown,
      },
    );
    const refused = await cli(['keys', 'rotate', '--new-fleet-key-file', keyFile, '--config', cfgFile]);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(`no UID: ${noUid} (staff staff-rot-2)`);
    expect(refused.err).toMatch(/cards import FILE.*--drop-unmapped/);
    const check = openDatabase(join(gwDir, 'gateway.db'), []);
    const cards = () =>
      check.prepare('SELECT card_ref, revoked_at FROM cards ORDER BY staff_ref').all() as Array<{
        card_ref: string;
        revoked_at: number | null;
      }>;
    expect(cards()).toEqual([
      { card_ref: pseudonymiseCard(U1, K0), revoked_at: null },
      { card_ref: noUid, revoked_at: null },
    ]); // nothing changed

    const dropped = await cli([
      'keys',
      'rotate',
      '--new-fleet-key-file',
      keyFile,
      '--drop-unmapped',
      '--config',
      cfgFile,
    ]);
    expect(dropped.code, dropped.err).toBe(0);
    expect(dropped.out).toMatch(/1 card\(s\) revoked/);
    const after = cards();
    expect(after[0]).toEqual({ card_ref: pseudonymiseCard(U1, K1), revoked_at: null });
    expect(after[1]?.card_ref).toBe(noUid);
    expect(after[1]?.revoked_at).not.toBeNull();
    expect(check.prepare('SELECT action FROM audit_log').pluck().all()).toContain('keys.rotate');
    check.close();
    // the same rotation again (what an operator does after a crash before the vault's move): it finishes it
    expect(await cli(['keys', 'rotate', '--new-fleet-key-file', keyFile, '--config', cfgFile])).toMatchObject(
      {
        code: 0,
        out: expect.stringMatching(/already rotated/) as unknown,
      },
    );

    // `run` on a config still holding the retired key is refused with the fix; on the new key it may start
    expect(staleFleetKeyProblem(testConfig(gwDir, { fleetKey: K0 }))).toMatch(
      /was retired by visittag-gateway keys rotate: set "fleetKey" to the new key/,
    );
    expect(staleFleetKeyProblem(testConfig(gwDir, { fleetKey: K1, retiredFleetKeys: [K0] }))).toBeNull();
    // a config still on the retired key, rotating on to a third key: refused with the fix
    const third = join(tmp.dir, 'third-key');
    writeFileSync(third, 'rotation-test-fleet-key-third-555555');
    expect(await cli(['keys', 'rotate', '--new-fleet-key-file', third, '--config', cfgFile])).toMatchObject({
      code: 78,
      err: expect.stringMatching(/was retired by an earlier rotation/) as unknown,
    });

    const pgCfg = join(tmp.dir, 'pg.json');
    writeFileSync(
      pgCfg,
      JSON.stringify({
        ...testConfig(gwDir),
        store: { engine: 'postgres', url: 'postgres://127.0.0.1:9/none' },
      }),
    );
    expect(await cli(['keys', 'rotate', '--new-fleet-key-file', keyFile, '--config', pgCfg])).toMatchObject({
      code: 78,
      err: expect.stringMatching(/SQLite only.*not built.*readers replace/) as unknown,
    });
  }, 60_000);
});
