/**
 * Retention and erasure on PostgreSQL (issue 16), the cases of retention.test.ts on `store.engine: "postgres"`:
 * a PostgreSQL cluster this test starts, the gateway of gateway/pg-instance.ts with its embedded broker on
 * loopback and a shifted clock, a real webhook receiver.
 *
 * Shown: retention deletes exactly the rows past each class's period and nothing younger, keeps the per-reader
 * sequence state, so a re-sent old tap after the prune is acknowledged but never stored, paired or forwarded
 * again; rows the visits engine still needs (above a reader's cursor, its contiguous mark or its anchor-scan
 * mark) are never deleted however old; the periodic job runs on an injected clock, in bounded batches, on ONE
 * of two instances at a time (a lease), and another instance takes over when the holder stops renewing;
 * erasure (API and offline CLI) is refused where records law applies, and when forced leaves no trace of the
 * person in any table of PostgreSQL or the instance's SQLite file while the visit count stays the same.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../protocol/index.js';
import { createPgGateway, type PgGateway } from '../../gateway/pg-instance.js';
import { localRetention, scanForRef, SqliteErasure } from '../../gateway/src/store/sqlite/retention.js';
import { retentionCommand } from '../../gateway/src/retention/cli.js';
import { RetentionSettings } from '../../gateway/src/retention/policy.js';
import {
  applyRecordedErasures,
  erasePgAudited,
  erasureDigest,
  PgRetentionJob,
  pgPrunerFor,
} from '../../gateway/src/retention/pg.js';
import { SqliteAuditStore } from '../../gateway/src/store/sqlite/audit.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { pgScanForRef, PgRetentionStore } from '../../gateway/src/store/postgres/retention.js';
import { readerScanKey } from '../../gateway/src/store/rows.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { VirtualClock } from '../../simulator/clock.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  batchOf,
  card,
  connectReader,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  waitUntil,
} from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const DAY = 86_400_000;
const R = 'rdr-pgret-1';
const CLIENT = 'client-pgret-77';
const STAFF = 'staff-pgret-42';

describe('retention and erasure on PostgreSQL', () => {
  const tmp = tempDir('vt-retention-pg-');
  const gwDir = join(tmp.dir, 'gw');
  let pgc: PgCluster | undefined;
  const pools: PgPool[] = [];
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
  let hook = '';
  let shift = 0;
  const clock: Clock = {
    now: () => Date.now() + shift,
    monotonic: () => performance.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
    clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
  };
  let gw: PgGateway | null = null;
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    pgc = await startPgCluster({ prefix: 'vt-retention-pg-' });
  }, 120_000);
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    for (const p of pools) await p.end().catch(() => undefined);
    await new Promise<void>((r) => server.close(() => r()));
    await pgc?.destroy();
    tmp.cleanup();
  }, 120_000);
  const pool = (url: string): PgPool => {
    const p = openPgPool({ url, max: 2 });
    pools.push(p);
    return p;
  };

  it('prunes exactly the old rows, keeps dedupe, and erasure leaves no identifier behind', async () => {
    const url = await pgc!.createDatabase();
    const config = () =>
      testConfig(gwDir, {
        store: { engine: 'postgres', url, poolMax: 4 },
        backend: { url: hook, secret: 'retention-test-secret-0123', backoff: { baseMs: 50, capMs: 200 } },
      });
    const start = async () => {
      gw = createPgGateway({ config: config(), logger: silent, clock });
      await gw.start();
      return gw;
    };
    const db = pool(url);
    const count = async (sql: string, params: unknown[] = []) =>
      Number((await db.query<{ n: number }>(sql, params)).rows[0]?.n ?? 0);

    let g = await start();
    await g.registry.addReader({ readerId: R, clientRef: CLIENT, password: PASSWORD });
    for (let n = 1; n <= 7; n++)
      await g.registry.addCard({ cardRef: card(n), staffRef: n === 2 ? STAFF : `staff-o${n}` });
    await g.syncReaders();
    let client = await connectReader(g.mqttPort ?? 0, R);
    let acks = await AckCollector.attach(client, R);

    // phase A at "now", phase B 170 days later (each tap starts a visit)
    await acks.publish(R, batchOf(R, [1, 2, 3, 4]));
    await acks.waitFor((a) => a.upTo === 4, 30_000);
    await waitUntil(() => received.filter((e) => e.type === 'visit.started').length >= 4, 30_000);
    // marked delivered only once the answer is read: shifting the clock before would date the delivery later
    await waitUntil(
      async () => (await count(`SELECT count(*) AS n FROM outbox WHERE state != 'delivered'`)) === 0,
      30_000,
    );
    shift = 170 * DAY;
    await acks.publish(R, batchOf(R, [5, 6]));
    await acks.waitFor((a) => a.upTo === 6, 30_000);
    await waitUntil(() => received.filter((e) => e.type === 'visit.started').length >= 6, 30_000);
    // the visits engine has passed every row (cursor and the reader's anchor-scan mark)
    await waitUntil(
      async () =>
        (await count(`SELECT processed_upto AS n FROM visit_cursor WHERE reader_id = $1`, [R])) === 6,
      30_000,
    );
    await client.endAsync();
    await g.stop();
    gw = null;

    const visitsBefore = await count('SELECT count(*) AS n FROM visits');
    const deliveredBefore = await count(`SELECT count(*) AS n FROM outbox WHERE state = 'delivered'`);
    expect(visitsBefore).toBeGreaterThanOrEqual(6);
    // 200 days after phase A: its raw events (180 days) and delivered outbox rows (100 days here) are past
    // retention; phase B's raw events are 30 days old (kept), its delivered rows 30 days (kept)
    const settings = RetentionSettings.parse({ outboxDeliveredDays: 100 });
    const deleted = await pgPrunerFor(new PgRetentionStore(db), settings).runAll(Date.now() + 200 * DAY);
    const seqs = (
      await db.query<{ seq: number }>('SELECT seq FROM events WHERE reader_id = $1 ORDER BY seq', [R])
    ).rows.map((r) => r.seq);
    expect(seqs).toEqual([5, 6]);
    expect(deleted.rawEvents).toBe(4);
    const deliveredAfter = await count(`SELECT count(*) AS n FROM outbox WHERE state = 'delivered'`);
    expect(deleted.outboxDelivered).toBe(deliveredBefore - deliveredAfter);
    // (delivered rows are deleted by the retention job only: test/reliability/retention-outbox.test.ts)
    expect(
      await count(`SELECT count(*) AS n FROM outbox WHERE state = 'delivered' AND created_at_ms < $1`, [
        Date.now() + 50 * DAY,
      ]),
    ).toBe(0);
    expect(deliveredAfter).toBeGreaterThan(0); // phase B's rows are younger than 100 days: kept
    expect(await count('SELECT count(*) AS n FROM visits')).toBe(visitsBefore); // visits: 'keep' by default
    expect(await count('SELECT contiguous_upto AS n FROM reader_seq WHERE reader_id = $1', [R])).toBe(6);

    // the old taps re-sent after the prune: acknowledged, never stored, paired or forwarded again
    g = await start();
    client = await connectReader(g.mqttPort ?? 0, R);
    acks = await AckCollector.attach(client, R);
    const forwarded = received.length;
    await acks.publish(R, batchOf(R, [1, 2, 3, 4, 7]));
    await acks.waitFor((a) => a.upTo === 7, 30_000);
    await waitUntil(() => received.length > forwarded, 30_000); // seq 7's visit start
    await waitUntil(
      async () => (await count(`SELECT count(*) AS n FROM outbox WHERE state != 'delivered'`)) === 0,
      30_000,
    );
    const stored = (
      await db.query<{ seq: number }>('SELECT seq FROM events WHERE reader_id = $1 ORDER BY seq', [R])
    ).rows.map((r) => r.seq);
    expect(stored).toEqual([5, 6, 7]);
    const started = received.filter((e) => e.type === 'visit.started').map((e) => e.visitId);
    expect(new Set(started).size).toBe(started.length);
    expect(started).toHaveLength(7);

    // erasure of the staff member through the API: refused while records law keeps their visits, done when forced
    const post = (body: unknown) =>
      fetch(`${g.adminUrl}/api/erasure`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const refused = await post({ kind: 'staff', ref: STAFF, reason: 'request 1' });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toContain('--force-records-law');
    expect(await pgScanForRef(db, STAFF)).not.toEqual({});
    const visitsPre = await count('SELECT count(*) AS n FROM visits');
    const done = await post({ kind: 'staff', ref: STAFF, reason: 'request 1', forceRecordsLaw: true });
    expect(done.status).toBe(200);
    const body = (await done.json()) as { pseudonym: string; cards: number };
    expect(body.cards).toBe(1);
    expect(await pgScanForRef(db, STAFF)).toEqual({});
    expect(await pgScanForRef(db, card(2))).toEqual({});
    expect(await count('SELECT count(*) AS n FROM visits')).toBe(visitsPre);
    expect(
      await count('SELECT count(*) AS n FROM visits WHERE staff_ref = $1', [body.pseudonym]),
    ).toBeGreaterThan(0);
    expect(
      await count('SELECT count(*) AS n FROM cards WHERE staff_ref = $1 AND revoked_at IS NOT NULL', [
        body.pseudonym,
      ]),
    ).toBe(1);
    await client.endAsync();
    await g.stop();
    gw = null;
    // the erasure's audit entry is in the audit log the instances share, naming only the pseudonym
    expect(
      (await db.query(`SELECT actor, target, reason FROM audit_log WHERE action = 'erasure.staff'`)).rows,
    ).toEqual([{ actor: expect.any(String) as string, target: body.pseudonym, reason: 'request 1' }]);
    const local = openDatabase(join(gwDir, 'gateway.db'), []);
    expect(scanForRef(local, STAFF)).toEqual({});
    local.close();

    // the CLI with no gateway running: erasure of the client, in PostgreSQL and the instance's SQLite file
    const cfgFile = join(tmp.dir, 'gateway.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({ ...config(), admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN } }),
    );
    const out: string[] = [];
    const err: string[] = [];
    const args = ['client', CLIENT, '--reason', 'request 2', '--config', cfgFile];
    const run = (a: string[]) =>
      retentionCommand(
        'erase',
        a,
        (l) => out.push(l),
        (l) => err.push(l),
      );
    expect(await run(args)).toBe(1);
    expect(err.join('\n')).toContain('records law');
    expect(await pgScanForRef(db, CLIENT)).not.toEqual({});
    expect(await run([...args, '--force-records-law'])).toBe(0);
    // no identifier of either person left anywhere: every text column of PostgreSQL and of the SQLite file
    for (const ref of [CLIENT, STAFF, card(2)]) expect(await pgScanForRef(db, ref)).toEqual({});
    const after = openDatabase(join(gwDir, 'gateway.db'), []);
    for (const ref of [CLIENT, STAFF, card(2)]) expect(scanForRef(after, ref)).toEqual({});
    expect(await count(`SELECT count(*) AS n FROM audit_log WHERE action LIKE 'erasure.%'`)).toBe(2);
    after.close();
    expect(await count('SELECT count(*) AS n FROM visits')).toBe(visitsPre);

    // `retention run` on this configuration prunes PostgreSQL (nothing is past retention now: all zero)
    out.length = 0;
    expect(
      await retentionCommand(
        'retention',
        ['run', '--config', cfgFile],
        (l) => out.push(l),
        (l) => err.push(l),
      ),
    ).toBe(0);
    expect(out.join('\n')).toMatch(/^deleted: rawEvents 0, /);
  }, 180_000);

  it('never deletes rows the visits engine still needs; the job prunes on one instance at a time (a lease)', async () => {
    const url = await pgc!.createDatabase();
    const db = pool(url);
    await migrate(db, postgresMigrations);
    const t0 = Date.UTC(2026, 0, 1);
    const old = t0 - 300 * DAY;
    // reader A: seqs 1..6 stored long ago, contiguous to 6, its visits cursor at 5, its anchor-scan mark at the
    // row of seq 3; reader B: old rows but never seen by the visits engine (no cursor, no mark)
    const ids: Record<string, number> = {};
    for (const [reader, n] of [
      ['rdr-a', 6],
      ['rdr-b', 3],
    ] as const) {
      for (let s = 1; s <= n; s++) {
        const r = await db.query<{ id: number }>(
          `INSERT INTO events (reader_id, seq, event_json, received_at_ms, sent_at_json)
           VALUES ($1, $2, '{}', $3, '{}') RETURNING id`,
          [reader, s, old],
        );
        ids[`${reader}:${s}`] = r.rows[0]!.id;
      }
      await db.query('INSERT INTO reader_seq (reader_id, contiguous_upto, max_seen) VALUES ($1, $2, $2)', [
        reader,
        n,
      ]);
    }
    await db.query(`INSERT INTO visit_cursor (reader_id, processed_upto) VALUES ('rdr-a', 5)`);
    await db.query('INSERT INTO visit_meta (key, value) VALUES ($1, $2)', [
      readerScanKey('rdr-a'),
      ids['rdr-a:3'],
    ]);
    // the global mark far ahead must not count: the turn engine scans per reader
    await db.query(`INSERT INTO visit_meta (key, value) VALUES ('anchor_scan_id', 1000000)`);
    for (let i = 0; i < 25; i++)
      await db.query(`INSERT INTO rejects (reader_id, reason, detail, at_ms) VALUES ('r', 'x', 'd', $1)`, [
        t0 - 40 * DAY,
      ]);
    for (let i = 0; i < 5; i++)
      await db.query(`INSERT INTO rejects (reader_id, reason, detail, at_ms) VALUES ('r', 'x', 'd', $1)`, [
        t0 - 20 * DAY,
      ]);

    const vc = new VirtualClock({ startMs: t0 });
    const settings = RetentionSettings.parse({ batchRows: 4 });
    const jobs = ['gw-a', 'gw-b'].map(
      (holder) =>
        new PgRetentionJob({
          shared: new PgRetentionStore(db),
          clock: vc,
          settings,
          logger: silent,
          holder,
          batchesPerTurn: 2,
        }),
    );
    const settleAt = async (t: number) => {
      for (let i = 0; i < 500; i++) {
        await vc.advanceTo(t);
        await Promise.all(jobs.map((j) => j.idle()));
        const due = vc.nextDueAt();
        if (due === null || due > t) return;
      }
      throw new Error('the retention jobs did not settle');
    };
    const rejectsLeft = () =>
      db.query<{ n: number }>('SELECT count(*)::int AS n FROM rejects').then((r) => r.rows[0]!.n);
    const seqsOf = async (reader: string) =>
      (
        await db.query<{ seq: number }>('SELECT seq FROM events WHERE reader_id = $1 ORDER BY seq', [reader])
      ).rows.map((r) => r.seq);
    for (const j of jobs) j.start();
    await settleAt(t0 + 59_000);
    expect(await rejectsLeft()).toBe(30); // nothing before the first run
    await settleAt(t0 + 60_000);
    expect(await rejectsLeft()).toBe(5); // the 25 old rows; the 5 younger ones stay
    expect(await seqsOf('rdr-a')).toEqual([4, 5, 6]); // 4, 5: past the anchor-scan mark; 6: past the cursor
    expect(await seqsOf('rdr-b')).toEqual([1, 2, 3]); // never processed: kept however old
    // deleted once, by one instance: bounded batches of at most 4 rows, 2 per turn, several turns
    const by = jobs.map((j) => j.deletedByThisInstance.rejects);
    expect(by.slice().sort((a, b) => a - b)).toEqual([0, 25]);
    const holder = jobs[by.indexOf(25)]!;
    const other = jobs[by.indexOf(0)]!;
    expect(holder.leasedTurns).toBeGreaterThanOrEqual(4);
    expect(other.leasedTurns).toBe(0);
    expect(holder.deletedByThisInstance.rawEvents).toBe(3);

    // the visits engine moves on: the rows it has passed become deletable at the next run
    await db.query(`UPDATE visit_cursor SET processed_upto = 6 WHERE reader_id = 'rdr-a'`);
    await db.query('UPDATE visit_meta SET value = $1 WHERE key = $2', [
      ids['rdr-a:6'],
      readerScanKey('rdr-a'),
    ]);
    await settleAt(t0 + 60_000 + 60 * 60_000);
    expect(await seqsOf('rdr-a')).toEqual([]);
    expect(holder.deletedByThisInstance.rawEvents).toBe(6);
    expect(await db.query('SELECT 1 FROM reader_seq').then((r) => r.rowCount)).toBe(2); // dedupe state kept

    // the holder stops without giving the lease up (a crash): the other takes over once it ran out (2 intervals)
    await holder.stop();
    await db.query(`INSERT INTO rejects (reader_id, reason, detail, at_ms) VALUES ('r', 'x', 'd', $1)`, [
      t0 - 31 * DAY,
    ]);
    await settleAt(t0 + 60_000 + 120 * 60_000);
    expect(await rejectsLeft()).toBe(6); // the lease is still the stopped holder's
    await settleAt(t0 + 60_000 + 180 * 60_000);
    expect(await rejectsLeft()).toBe(5);
    expect(other.deletedByThisInstance.rejects).toBe(1);
    await other.stop();
  }, 120_000);
  it("an erasure on one instance reaches the other instances' SQLite files (digests in PostgreSQL, applied by each)", async () => {
    const url = await pgc!.createDatabase();
    const db = pool(url);
    await migrate(db, postgresMigrations);
    const FLEET = 'retention-pg-fleet-key-0123456789';
    const WHO = 'staff-erase-everywhere-7';
    const CARD = card(77);
    const t0 = Date.UTC(2026, 11, 1);
    await db.query(
      'INSERT INTO cards (card_ref, staff_ref, revoked_at, created_at) VALUES ($1, $2, NULL, $3)',
      [CARD, WHO, t0],
    );
    // three instances' own files; B and C hold older copies naming the person (audit rows from before the audit
    // log moved to PostgreSQL)
    const files = ['a', 'b', 'c'].map((n) => openDatabase(join(tmp.dir, `erase-${n}.db`), sqliteMigrations));
    const [a, b, c] = files as [(typeof files)[0], (typeof files)[0], (typeof files)[0]];
    for (const f of [b, c]) {
      const audit = new SqliteAuditStore(f);
      audit.append({
        atMs: t0,
        actor: 'admin',
        action: 'cards.assign',
        target: `card:${CARD}`,
        before: null,
        after: { staffRef: WHO, cardRef: CARD },
        reason: null,
      });
      audit.append({
        atMs: t0,
        actor: 'admin',
        action: 'user.note',
        target: WHO,
        before: null,
        after: null,
        reason: null,
      });
      expect(scanForRef(f, WHO)).not.toEqual({});
    }
    const r = await erasePgAudited(
      new PgRetentionStore(db),
      new SqliteErasure(a),
      RetentionSettings.parse({}),
      () => undefined,
      { kind: 'staff', ref: WHO, force: true, nowMs: t0, actor: 'test', reason: 'request 3' },
      FLEET,
    );
    expect(r.ok).toBe(true);
    const pseudonym = r.ok ? r.pseudonym : '';
    expect(await pgScanForRef(db, WHO)).toEqual({});
    // PostgreSQL keeps digests and pseudonyms only
    const logged = (await db.query<{ ref_digest: string }>('SELECT ref_digest FROM erasure_log')).rows;
    expect(logged.map((x) => x.ref_digest).sort()).toEqual(
      [erasureDigest(FLEET)(WHO), erasureDigest(FLEET)(CARD)].sort(),
    );
    expect(scanForRef(b, WHO)).not.toEqual({}); // not yet applied on B

    // B applies it directly; C through its retention job's turn on a virtual clock
    expect(
      await applyRecordedErasures(new PgRetentionStore(db), new SqliteErasure(b), erasureDigest(FLEET)),
    ).toBe(2);
    expect(
      await applyRecordedErasures(new PgRetentionStore(db), new SqliteErasure(b), erasureDigest(FLEET)),
    ).toBe(0); // its mark moved on
    const vc = new VirtualClock({ startMs: t0 + 60_000 });
    const job = new PgRetentionJob({
      shared: new PgRetentionStore(db),
      local: localRetention(c, RetentionSettings.parse({})),
      clock: vc,
      settings: RetentionSettings.parse({}),
      logger: silent,
      holder: 'gw-c',
      erasureKey: FLEET,
    });
    job.start();
    await vc.advanceTo(t0 + 2 * 60_000);
    await job.idle();
    await job.stop();
    expect(job.erasuresApplied).toBe(2);
    for (const f of [b, c]) {
      expect(scanForRef(f, WHO)).toEqual({});
      expect(scanForRef(f, CARD)).toEqual({});
      expect(scanForRef(f, pseudonym)).not.toEqual({}); // the same pseudonym as PostgreSQL's
    }
    // the lease holder deletes recorded erasures after 7 days
    const vc2 = new VirtualClock({ startMs: t0 + 8 * DAY });
    const later = new PgRetentionJob({
      shared: new PgRetentionStore(db),
      local: localRetention(c, RetentionSettings.parse({})),
      clock: vc2,
      settings: RetentionSettings.parse({}),
      logger: silent,
      holder: 'gw-c',
      erasureKey: FLEET,
    });
    later.start();
    await vc2.advanceTo(t0 + 8 * DAY + 60_000);
    await later.idle();
    await later.stop();
    expect((await db.query('SELECT 1 FROM erasure_log')).rows).toEqual([]);
    for (const f of files) f.close();
  }, 120_000);
});
