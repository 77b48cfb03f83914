/**
 * Retention and erasure (issue 16), on real SQLite files with a real gateway (embedded broker on loopback) and a
 * real webhook receiver. The gateway's clock is shifted to make taps "old"; the pruner runs on the same file.
 *
 * Shown: retention deletes exactly the rows past each class's period (phase-A raw events and delivered outbox
 * rows) and nothing younger (phase B), keeps the per-reader sequence state, so a re-sent old tap after the prune
 * is acknowledged but never paired or forwarded again; the periodic job runs on an injected clock; erasure is
 * refused where records-law retention applies, and when forced leaves no trace of the person in any table while
 * the visit count stays the same; the audit entry names only the pseudonym.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../protocol/index.js';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { RetentionSettings } from '../../gateway/src/retention/policy.js';
import { RetentionJob } from '../../gateway/src/retention/prune.js';
import { createPruner, scanForRef } from '../../gateway/src/store/sqlite/retention.js';
import { retentionCommand } from '../../gateway/src/retention/cli.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { VirtualClock } from '../../simulator/clock.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  batchOf,
  card,
  connectReader,
  PASSWORD,
  silent,
  storedSeqs,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

const DAY = 86_400_000;
const R = 'rdr-ret-1';
const CLIENT = 'client-ret-77';
const STAFF = 'staff-ret-42';

describe('retention and erasure on a real gateway database', () => {
  const tmp = tempDir('vt-retention-');
  const gwDir = join(tmp.dir, 'gw');
  const received: Array<{ type: string; visitId?: string }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        events: Array<{ type: string; visitId?: string }>;
      };
      received.push(...body.events);
      res.writeHead(200).end('ok');
    });
  });
  let url = '';
  let shift = 0;
  const clock: Clock = {
    now: () => Date.now() + shift,
    monotonic: () => performance.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
    clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
  };
  let gw: Gateway | null = null;
  const config = () =>
    testConfig(gwDir, {
      backend: { url, secret: 'retention-test-secret-0123', backoff: { baseMs: 50, capMs: 200 } },
    });
  const start = async () => {
    gw = createGateway({ config: config(), logger: silent, clock });
    trackDataDir(gw, gwDir);
    await gw.start();
    return gw;
  };
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    await new Promise<void>((r) => server.close(() => r()));
    tmp.cleanup();
  }, 30_000);

  it('prunes exactly the old rows, keeps dedupe, and erasure leaves no identifier behind', async () => {
    let g = await start();
    await g.registry.addReader({ readerId: R, clientRef: CLIENT, password: PASSWORD });
    for (let n = 1; n <= 7; n++)
      g.registry.addCard({ cardRef: card(n), staffRef: n === 2 ? STAFF : `staff-o${n}` });
    let client = await connectReader(g.mqttPort ?? 0, R);
    let acks = await AckCollector.attach(client, R);

    // phase A at "now", phase B 170 days later (each tap starts a visit, tapEvent's decision 'start')
    await acks.publish(R, batchOf(R, [1, 2, 3, 4]));
    await acks.waitFor((a) => a.upTo === 4);
    await waitUntil(() => received.filter((e) => e.type === 'visit.started').length >= 4, 15_000);
    // the backend has the events, but the gateway marks its rows delivered only once the answer is read:
    // shifting the clock before that would date their delivery 170 days later
    const outboxPeek = openDatabase(join(gwDir, 'gateway.db'), []);
    await waitUntil(
      () => outboxPeek.prepare(`SELECT COUNT(*) FROM outbox WHERE state != 'delivered'`).pluck().get() === 0,
      15_000,
    );
    outboxPeek.close();
    shift = 170 * DAY;
    await acks.publish(R, batchOf(R, [5, 6]));
    await acks.waitFor((a) => a.upTo === 6);
    await waitUntil(() => received.filter((e) => e.type === 'visit.started').length >= 6, 15_000);
    await client.endAsync();
    await g.stop();
    gw = null;

    const file = join(gwDir, 'gateway.db');
    const db = openDatabase(file, []);
    const count = (sql: string) => (db.prepare(sql).pluck().get() as number) ?? 0;
    const visitsBefore = count('SELECT COUNT(*) FROM visits');
    const deliveredBefore = count(`SELECT COUNT(*) FROM outbox WHERE state = 'delivered'`);
    expect(visitsBefore).toBeGreaterThanOrEqual(6);
    // 200 days after phase A: raw events (180 days) and delivered outbox rows (30 days) of phase A are past
    // retention; phase B's raw events are 30 days old (kept), its delivered rows are exactly 30 days + ε old.
    const settings = RetentionSettings.parse({ outboxDeliveredDays: 100 });
    const deleted = createPruner(db, settings).runAll(Date.now() + 200 * DAY);
    const seqs = db.prepare('SELECT seq FROM events WHERE reader_id = ? ORDER BY seq').pluck().all(R);
    expect(seqs).toEqual([5, 6]);
    expect(deleted.rawEvents).toBe(4);
    const deliveredAfter = count(`SELECT COUNT(*) FROM outbox WHERE state = 'delivered'`);
    expect(deleted.outboxDelivered).toBe(deliveredBefore - deliveredAfter);
    expect(deliveredAfter).toBeGreaterThan(0); // phase B's rows are younger than 100 days: kept
    expect(
      count(
        `SELECT COUNT(*) FROM outbox WHERE state = 'delivered' AND created_at_ms < ${Date.now() + 50 * DAY}`,
      ),
    ).toBe(0);
    expect(count('SELECT COUNT(*) FROM visits')).toBe(visitsBefore); // visits: 'keep' by default
    expect(db.prepare('SELECT contiguous_upto FROM reader_seq WHERE reader_id = ?').pluck().get(R)).toBe(6);
    db.close();

    // the old taps re-sent after the prune: acknowledged, never paired or forwarded again
    g = await start();
    client = await connectReader(g.mqttPort ?? 0, R);
    acks = await AckCollector.attach(client, R);
    const forwarded = received.length;
    await acks.publish(R, batchOf(R, [1, 2, 3, 4, 7]));
    await acks.waitFor((a) => a.upTo === 7);
    await waitUntil(() => received.length > forwarded, 15_000); // seq 7's visit start
    g.pipeline.processNow();
    await g.pipeline.forwarder?.stop(); // drains: whatever would be forwarded has been by now
    // the pruned seqs are settled: counted as duplicates, not stored again
    expect(storedSeqs(g, R)).toEqual([5, 6, 7]);
    const started = received.filter((e) => e.type === 'visit.started').map((e) => e.visitId);
    expect(new Set(started).size).toBe(started.length);
    expect(started).toHaveLength(7);

    // erasure of the staff member: refused while records law keeps their visits, done when forced
    const post = (body: unknown) =>
      fetch(`${g.adminUrl}/api/erasure`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const refused = await post({ kind: 'staff', ref: STAFF, reason: 'request 1' });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toContain('--force-records-law');
    const peek = openDatabase(file, []);
    expect(scanForRef(peek, STAFF)).not.toEqual({});
    const visitsPre = peek.prepare('SELECT COUNT(*) FROM visits').pluck().get();
    const done = await post({ kind: 'staff', ref: STAFF, reason: 'request 1', forceRecordsLaw: true });
    expect(done.status).toBe(200);
    const body = (await done.json()) as { pseudonym: string; cards: number };
    expect(body.cards).toBe(1);
    expect(scanForRef(peek, STAFF)).toEqual({});
    expect(scanForRef(peek, card(2))).toEqual({});
    expect(peek.prepare('SELECT COUNT(*) FROM visits').pluck().get()).toBe(visitsPre);
    expect(
      peek.prepare('SELECT COUNT(*) FROM visits WHERE staff_ref = ?').pluck().get(body.pseudonym),
    ).toBeGreaterThan(0);
    const audit = peek
      .prepare(`SELECT actor, target, reason FROM audit_log WHERE action = 'erasure.staff'`)
      .all() as Array<{ actor: string; target: string; reason: string }>;
    expect(audit).toEqual([
      { actor: expect.any(String) as string, target: body.pseudonym, reason: 'request 1' },
    ]);
    peek.close();
    await client.endAsync();
    await g.stop();
    gw = null;

    // the CLI with no gateway running: erasure of the client in the database
    const cfgFile = join(tmp.dir, 'gateway.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({ ...config(), admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN } }),
    );
    const out: string[] = [];
    const err: string[] = [];
    const args = ['client', CLIENT, '--reason', 'request 2', '--config', cfgFile];
    expect(
      await retentionCommand(
        'erase',
        args,
        (l) => out.push(l),
        (l) => err.push(l),
      ),
    ).toBe(1);
    expect(err.join('\n')).toContain('records law');
    expect(
      await retentionCommand(
        'erase',
        [...args, '--force-records-law'],
        (l) => out.push(l),
        (l) => err.push(l),
      ),
    ).toBe(0);
    const after = openDatabase(file, []);
    expect(scanForRef(after, CLIENT)).toEqual({});
    expect(after.prepare('SELECT COUNT(*) FROM visits').pluck().get()).toBe(visitsPre);
    expect(after.prepare(`SELECT COUNT(*) FROM audit_log WHERE action LIKE 'erasure.%'`).pluck().get()).toBe(
      2,
    );
    after.close();
  }, 90_000);

  it('the periodic job deletes on its injected clock, in bounded batches, and only what is past retention', async () => {
    const db = openDatabase(join(tmp.dir, 'job.db'), sqliteMigrations);
    const t0 = Date.UTC(2026, 0, 1);
    const ins = db.prepare('INSERT INTO rejects (reader_id, reason, detail, at_ms) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < 25; i++) ins.run('r', 'x', 'd', t0 - 40 * DAY); // past 30 days at t0
    for (let i = 0; i < 5; i++) ins.run('r', 'x', 'd', t0 - 20 * DAY); // younger
    const vc = new VirtualClock({ startMs: t0 });
    const settings = RetentionSettings.parse({ batchRows: 4 });
    const job = new RetentionJob({
      pruner: createPruner(db, settings),
      clock: vc,
      settings,
      logger: silent,
      batchesPerTurn: 2,
    });
    job.start();
    const left = () => db.prepare('SELECT COUNT(*) FROM rejects').pluck().get() as number;
    expect(left()).toBe(30); // nothing before the first run
    await vc.advanceTo(t0 + 59_000);
    expect(left()).toBe(30);
    const fired = vc.fired;
    await vc.advanceTo(t0 + 60_000);
    expect(left()).toBe(5); // the 25 old rows; the 5 younger ones stay
    // bounded: 7 batches of at most 4 rejects (plus one empty batch per other class), 2 per turn
    expect(vc.fired - fired).toBeGreaterThanOrEqual(4);
    ins.run('r', 'x', 'd', t0 - 31 * DAY);
    await vc.advanceTo(t0 + 60_000 + 59 * 60_000);
    expect(left()).toBe(6); // the next run is an interval (60 minutes) later
    await vc.advanceTo(t0 + 60_000 + 60 * 60_000);
    expect(left()).toBe(5);
    job.stop();
    db.close();
  });
});
