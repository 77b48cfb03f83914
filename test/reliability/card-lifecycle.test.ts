/**
 * Card lifecycle (issue 16): revoke and reinstate from the CLI (a real `visittag-gateway` child process
 * against a running gateway) reach a connected reader at once; validity dates; a full-list import
 * withdraws missing cards; a lost card's replacement keeps the staff member's history. Real parts: the
 * gateway with its embedded MQTT broker on loopback, a real device (simulated card reader and feedback),
 * the real SQLite file.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayArgv } from '../support/entries.js';
import { createDevice, SimulatedCardReader, SimulatedFeedback } from '../../device/index.js';
import type { TapReport } from '../../device/index.js';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { writeAdminEndpoint } from '../../gateway/src/admin/client.js';
import { pseudonymiseCard, systemClock, type Clock } from '../../protocol/index.js';
import { parseDeviceSettings } from '../../device/src/config.js';
import { silentLogger } from '../device/helpers.js';
import { SqliteCardStore } from '../../gateway/src/store/sqlite/cards.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import type { TapEvent } from '../../protocol/index.js';
import {
  AckCollector,
  ADMIN_TOKEN,
  batchOf,
  connectReader,
  dbOf,
  tapEvent,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const GW_FLEET_KEY = 'test-fleet-key-0123456789';

function gatewayCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [...gatewayArgv(), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      fail(new Error(`visittag-gateway ${args.join(' ')} did not finish\n${stderr}`));
    }, 40_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      done({ code, stdout, stderr });
    });
  });
}

const api = async (gw: Gateway, path: string, body?: unknown) => {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('card revoke and reinstate from the CLI reach a connected reader at once', () => {
  const tmp = tempDir('vt-card-life-');
  const gwDir = join(tmp.dir, 'gw');
  const cfgFile = join(tmp.dir, 'gateway.json');
  let gw: Gateway;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    gw = createGateway({ config: testConfig(gwDir), logger: silent });
    trackDataDir(gw, gwDir);
    await gw.start();
    writeAdminEndpoint(gwDir, gw.adminUrl); // how the CLI finds the running gateway
    writeFileSync(
      cfgFile,
      JSON.stringify({
        ...testConfig(gwDir),
        admin: { host: '127.0.0.1', port: gw.adminPort, token: ADMIN_TOKEN },
      }),
    );
  });
  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await gw.stop();
    tmp.cleanup();
  });

  it('revoke → the next tap of that card gets the rejected feedback; reinstate → accepted again; both audited', async () => {
    const UID = '04C0FFEE000001';
    const ref = pseudonymiseCard(UID, GW_FLEET_KEY);
    await gw.registry.addReader({ readerId: 'rdr-life-1', clientRef: 'home-1', password: PASSWORD });
    gw.registry.addCard({ cardRef: ref, staffRef: 'nurse-7' });

    const reader = new SimulatedCardReader();
    const feedback = new SimulatedFeedback();
    const device = createDevice({
      config: parseDeviceSettings({
        readerId: 'rdr-life-1',
        dataDir: join(tmp.dir, 'dev'),
        fleetKey: GW_FLEET_KEY,
        mqtt: { url: `mqtt://127.0.0.1:${gw.mqttPort}`, username: 'rdr-life-1', password: PASSWORD },
        reader: { driver: 'simulated' },
        feedback: { driver: 'simulated' },
        logLevel: 'silent',
        visit: { repeatWindowMs: 0 },
      }),
      logger: silentLogger,
      cardReader: reader,
      feedback,
      clockSynced: () => true,
    });
    stops.push(() => device.stop());
    const taps: TapReport[] = [];
    device.on('tap', (t) => taps.push(t));
    await device.start();
    await waitUntil(() => device.status().connected, 15_000);
    const tap = async () => {
      const n = taps.length;
      reader.tap(UID);
      await waitUntil(() => taps.length === n + 1, 10_000);
      return feedback.signals.at(-1)?.pattern;
    };
    expect(await tap()).toBe('visit-started');
    const before = device.status().configVersion;

    const r = await gatewayCli(['cards', 'revoke', ref, '--reason', 'lost on the bus', '--config', cfgFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`card ${ref} revoked by the running gateway; pushed to 1 reader(s)`);
    // pushed at once: the connected reader applies the new config without a reconnect or restart
    await waitUntil(() => device.status().configVersion > before, 10_000);
    expect(await tap()).toBe('rejected');
    expect(taps.at(-1)).toMatchObject({ decision: 'rejected', rejectReason: 'revoked-card' });
    // the rejected tap still reaches the gateway (journalled and delivered)
    await waitUntil(
      () =>
        (dbOf(gw)
          .prepare(
            "SELECT count(*) FROM events WHERE reader_id = 'rdr-life-1' AND event_json LIKE '%revoked-card%'",
          )
          .pluck()
          .get() as number) === 1,
      10_000,
    );

    const again = await gatewayCli(['cards', 'reinstate', ref, '--config', cfgFile]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('reinstated by the running gateway; pushed to 1 reader(s)');
    await waitUntil(() => !device.rules().revoked.has(ref), 10_000);
    expect(await tap()).not.toBe('rejected');
    expect(taps.at(-1)?.decision).not.toBe('rejected');

    // the revoke a second time through the API: unchanged answers say so, nothing pushed twice
    expect((await api(gw, `/api/cards/${ref}/reinstate`, {})).body).toMatchObject({
      changed: false,
      pushed: null,
    });

    const audit = dbOf(gw)
      .prepare("SELECT action, actor, reason FROM audit_log WHERE action LIKE 'card.%' ORDER BY seq")
      .all() as { action: string; actor: string; reason: string | null }[];
    expect(audit.map((a) => a.action)).toEqual(['card.revoke', 'card.reinstate']);
    expect(audit[0]?.reason).toBe('lost on the bus');
  }, 90_000);

  it('cards import FILE --full (CLI): registered cards missing from the complete list are withdrawn and pushed', async () => {
    const keep = `c1_${'a'.repeat(32)}`;
    const gone = `c1_${'b'.repeat(32)}`;
    gw.registry.addCard({ cardRef: gone, staffRef: 'nurse-8' });
    const csv = join(tmp.dir, 'cards.csv');
    const stillThere = pseudonymiseCard('04C0FFEE000001', GW_FLEET_KEY);
    writeFileSync(csv, `staff;card_ref\nnurse-9;${keep}\nnurse-7;${stillThere}\n`);
    const r = await gatewayCli(['cards', 'import', csv, '--full', '--config', cfgFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('imported 2 card(s)');
    expect(r.stdout).toContain(`withdrew 1 card(s) missing from the full list: ${gone}`);
    const cfg = (await api(gw, '/api/readers/rdr-life-1/config')).body as { config: { revoked: string[] } };
    expect(cfg.config.revoked).toEqual([gone]);
  }, 60_000);
});

describe('validity dates, full-list withdrawal and lost-card replacement', () => {
  const tmp = tempDir('vt-card-valid-');
  let gw: Gateway;
  let now = Date.UTC(2026, 10, 2, 9, 0, 0);
  const clock: Clock = { ...systemClock, now: () => now };
  const C = (n: number) => `c1_${n.toString(16).padStart(32, '0')}`;

  beforeAll(async () => {
    gw = createGateway({ config: testConfig(tmp.dir), clock, logger: silent });
    trackDataDir(gw, tmp.dir);
    await gw.start();
  });
  afterAll(async () => {
    await gw.stop();
    tmp.cleanup();
  });

  it('a tap outside the validity window counts as revoked; the timer pushes the lists when a date passes', async () => {
    await gw.registry.addReader({ readerId: 'rdr-valid', clientRef: 'home-2', password: PASSWORD });
    gw.registry.addCard({ cardRef: C(1), staffRef: 'nurse-1' });
    const set = await api(gw, `/api/cards/${C(1)}/validity`, {
      validFrom: '2026-11-03',
      validTo: '2026-11-05T00:00:00Z',
    });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ changed: true });
    const card = (await api(gw, `/api/cards/${C(1)}`)).body;
    expect(card).toMatchObject({ validFromMs: Date.UTC(2026, 10, 3), validToMs: Date.UTC(2026, 10, 5) });
    const pushed = (await api(gw, '/api/readers/rdr-valid/config')).body as { config: { revoked: string[] } };
    expect(pushed.config.revoked).toEqual([C(1)]); // not valid yet: the reader refuses it
    // a day later, the window is open: the tick pushes a config without it; nothing changes on a second tick
    now = Date.UTC(2026, 10, 3, 6, 0, 0);
    expect((await gw.cardPusher.tick()).pushed).toEqual(['rdr-valid']);
    expect((await gw.cardPusher.tick()).pushed).toEqual([]);
    const open = (await api(gw, '/api/readers/rdr-valid/config')).body as { config: { revoked: string[] } };
    expect(open.config.revoked).toEqual([]);
    now = Date.UTC(2026, 10, 5, 0, 0, 0); // the end is exclusive
    expect((await gw.cardPusher.tick()).pushed).toEqual(['rdr-valid']);
    const shut = (await api(gw, '/api/readers/rdr-valid/config')).body as { config: { revoked: string[] } };
    expect(shut.config.revoked).toEqual([C(1)]);
    // refused: an end before the start
    const bad = await api(gw, `/api/cards/${C(1)}/validity`, {
      validFrom: '2026-11-05',
      validTo: '2026-11-04',
    });
    expect(bad.status).toBe(400);
    expect(String(bad.body.error)).toContain('end must be after its start');
  });

  it('the gateway card status honours the window (from inclusive, to exclusive)', () => {
    const t = tempDir('vt-card-status-');
    const db = openDatabase(join(t.dir, 'gateway.db'), sqliteMigrations);
    try {
      const store = new SqliteCardStore({ db, clock });
      store.assign({ cardRef: C(5), staffRef: 'nurse-5', actor: 'test', nowMs: 0 });
      store.setValidity(C(5), 1_000, 2_000);
      expect(store.statusAt(C(5), 999).kind).toBe('revoked');
      expect(store.statusAt(C(5), 1_000)).toEqual({ kind: 'known', staffRef: 'nurse-5' });
      expect(store.statusAt(C(5), 1_999).kind).toBe('known');
      expect(store.statusAt(C(5), 2_000)).toEqual({
        kind: 'revoked',
        staffRef: 'nurse-5',
        revokedAtMs: 2_000,
      });
      store.setValidity(C(5), null, null);
      expect(store.statusAt(C(5), 5_000).kind).toBe('known');
    } finally {
      db.close();
      t.cleanup();
    }
  });

  it('import --full withdraws every registered card missing from the list (and refuses an empty list)', async () => {
    for (const n of [10, 11, 12]) gw.registry.addCard({ cardRef: C(n), staffRef: `nurse-${n}` });
    const r = await api(gw, '/api/cards/withdraw-missing', { keep: [C(10), C(12)] });
    expect(r.status).toBe(200);
    expect(r.body.withdrawn).toEqual([C(1), C(11)]); // every active card not on the list
    expect((await api(gw, `/api/cards/${C(11)}`)).body.revokedAtMs).toBe(now);
    expect((await api(gw, `/api/cards/${C(10)}`)).body.revokedAtMs).toBeNull();
    expect((await api(gw, '/api/cards/withdraw-missing', { keep: [] })).status).toBe(400);
  });

  it('lost-card replacement: the new card goes to the same staff member with the same window; history kept', async () => {
    gw.registry.addCard({ cardRef: C(20), staffRef: 'nurse-20' });
    await gw.registry.addReader({ readerId: 'rdr-hist', clientRef: 'home-3', password: PASSWORD });
    const client = await connectReader(gw.mqttPort ?? 0, 'rdr-hist');
    const acks = await AckCollector.attach(client, 'rdr-hist');
    const send = async (evs: TapEvent[]) => {
      await acks.publish('rdr-hist', { ...batchOf('rdr-hist', []), events: evs });
      await acks.waitFor((a) => a.upTo === evs.at(-1)?.seq);
    };
    const ev = (seq: number, card: string, decision: 'start' | 'stop', visitId: string) =>
      tapEvent('rdr-hist', seq, { card, decision, visitId });
    await send([ev(1, C(20), 'start', 'v-old'), ev(2, C(20), 'stop', 'v-old')]);
    now = tapEvent('rdr-hist', 2).time.wallMs + 60_000; // the card is lost after its visit
    const r = await api(gw, `/api/cards/${C(20)}/replace`, { newCardRef: C(21), reason: 'lost' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ cardRef: C(21), staffRef: 'nurse-20', registry: 'added' });
    expect((await api(gw, `/api/cards/${C(20)}`)).body).toMatchObject({
      replacedBy: C(21),
      revokedAtMs: now,
    });
    // the old card cannot be reinstated while its replacement exists; a card of someone else is refused
    expect((await api(gw, `/api/cards/${C(20)}/reinstate`, {})).status).toBe(409);
    expect((await api(gw, `/api/cards/${C(10)}/replace`, { newCardRef: C(12) })).status).toBe(409);
    expect((await api(gw, `/api/cards/${C(99)}/revoke`, {})).status).toBe(404);
    // taps of the new card, later: the same staff member; the old visit keeps its staff member
    const later = (e: TapEvent, plusMs: number): TapEvent => ({
      ...e,
      time: { ...e.time, wallMs: now + plusMs, monoMs: e.time.monoMs + plusMs },
    });
    await send([
      later(ev(3, C(21), 'start', 'v-new'), 3_600_000),
      later(ev(4, C(21), 'stop', 'v-new'), 5_400_000),
    ]);
    client.end(true);
    gw.flush();
    gw.pipeline.processNow(['rdr-hist']);
    const visits = dbOf(gw)
      .prepare(
        "SELECT visit_id, card_ref, staff_ref FROM visits WHERE reader_id = 'rdr-hist' ORDER BY visit_id",
      )
      .all();
    expect(visits).toEqual([
      { visit_id: 'v-new', card_ref: C(21), staff_ref: 'nurse-20' },
      { visit_id: 'v-old', card_ref: C(20), staff_ref: 'nurse-20' },
    ]);
  });
});
