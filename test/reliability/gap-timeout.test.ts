/**
 * Gap timeout and accept (issue 16) on a real gateway (embedded broker on loopback, real SQLite file).
 * A reader sends seqs 1, 3, 4, 5: seq 2 never arrives, so only seq 1 is paired. After retention.gapTimeoutMinutes
 * on the gateway's clock the gap is declared lost: the reader's ack moves to 5, the visits engine processes 3-5,
 * the metric and the audit log show it. A second reader's gap is accepted by an operator through the admin API.
 * The gateway's clock runs minute-long timers after 20 ms and is moved forward by the test.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gapsCommand } from '../../gateway/src/retention/gaps-cli.js';
import { afterAll, describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../protocol/index.js';
import { createGateway, type Gateway } from '../../gateway/index.js';
import {
  ADMIN_TOKEN,
  AckCollector,
  adminGet,
  batchOf,
  connectReader,
  dbOf,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';

describe('a missing seq does not stall a reader for good', () => {
  const tmp = tempDir('vt-gaps-');
  let shift = 0;
  const clock: Clock = {
    now: () => Date.now() + shift,
    monotonic: () => performance.now() + shift,
    setTimeout: (fn, ms) => setTimeout(fn, ms >= 60_000 ? 20 : ms) as unknown as TimerHandle,
    clearTimeout: (h) => clearTimeout(h as unknown as NodeJS.Timeout),
  };
  let gw: Gateway | null = null;
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    tmp.cleanup();
  }, 30_000);

  it('declares a timed-out gap lost (ack, pairing, metric, audit) and accepts another by hand', async () => {
    const dir = join(tmp.dir, 'gw');
    const g = (gw = createGateway({
      config: testConfig(dir, { retention: { gapTimeoutMinutes: 30 } }),
      logger: silent,
      clock,
    }));
    trackDataDir(g, dir);
    await g.start();
    const cursor = (r: string) =>
      dbOf(g).prepare('SELECT processed_upto FROM visit_cursor WHERE reader_id = ?').pluck().get(r) as
        number | undefined;

    await g.registry.addReader({ readerId: 'rdr-gap-1', clientRef: 'home-g1', password: PASSWORD });
    const c1 = await connectReader(g.mqttPort ?? 0, 'rdr-gap-1');
    const a1 = await AckCollector.attach(c1, 'rdr-gap-1');
    await a1.publish('rdr-gap-1', batchOf('rdr-gap-1', [1, 3, 4, 5]));
    const first = await a1.waitFor((a) => a.upTo === 1 && (a.gaps?.length ?? 0) > 0);
    expect(first.gaps).toEqual([{ from: 2, to: 2 }]);
    await waitUntil(() => cursor('rdr-gap-1') === 1);
    // the gap is seen by the watch (checks every "minute"); 10 minutes on: not yet lost
    await new Promise((r) => setTimeout(r, 200));
    shift += 10 * 60_000;
    await new Promise((r) => setTimeout(r, 200));
    expect(a1.acks.some((a) => a.upTo === 5)).toBe(false);
    expect(cursor('rdr-gap-1')).toBe(1);
    // past 30 minutes: declared lost, the reader's ack reaches 5 and pairing continues
    shift += 25 * 60_000;
    await a1.waitFor((a) => a.upTo === 5);
    await waitUntil(() => cursor('rdr-gap-1') === 5);
    const lost = dbOf(g)
      .prepare('SELECT seq, detail FROM rejected_events WHERE reader_id = ?')
      .all('rdr-gap-1') as Array<{ seq: number; detail: string }>;
    expect(lost.map((l) => l.seq)).toEqual([2]);
    expect(lost[0]?.detail).toContain('gap timeout');
    const metrics = await adminGet(g, '/metrics');
    expect(metrics.text).toMatch(/visittag_seq_gap_lost_total\{cause="timeout"\} 1\b/);
    const timedOut = dbOf(g)
      .prepare(`SELECT actor, target, after_json FROM audit_log WHERE action = 'gap.timeout'`)
      .all() as Array<{ actor: string; target: string; after_json: string }>;
    expect(timedOut).toHaveLength(1);
    expect(timedOut[0]).toMatchObject({ actor: 'system:gap-timeout', target: 'reader:rdr-gap-1' });
    expect(JSON.parse(timedOut[0]?.after_json ?? '{}')).toMatchObject({ from: 2, to: 2, seqs: 1 });

    // an operator accepts a second reader's gap at once
    await g.registry.addReader({ readerId: 'rdr-gap-2', clientRef: 'home-g2', password: PASSWORD });
    const c2 = await connectReader(g.mqttPort ?? 0, 'rdr-gap-2');
    const a2 = await AckCollector.attach(c2, 'rdr-gap-2');
    await a2.publish('rdr-gap-2', batchOf('rdr-gap-2', [1, 5, 6]));
    await a2.waitFor((a) => a.upTo === 1);
    const accept = (body: unknown) =>
      fetch(`${g.adminUrl}/api/readers/rdr-gap-2/gaps/accept`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await accept({ reason: 'journal wiped', from: 7, to: 9 })).status).toBe(409); // not missing
    expect((await accept({ from: 2, to: 4 })).status).toBe(400); // a reason is required
    const ok = await accept({ reason: 'journal wiped on site' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ accepted: { from: 2, to: 4 } });
    await a2.waitFor((a) => a.upTo === 6);
    await waitUntil(() => cursor('rdr-gap-2') === 6);
    const accepted = dbOf(g)
      .prepare(`SELECT actor, reason FROM audit_log WHERE action = 'gap.accepted'`)
      .all() as Array<{ actor: string; reason: string }>;
    expect(accepted).toEqual([{ actor: 'admin-token', reason: 'journal wiped on site' }]);
    expect((await adminGet(g, '/metrics')).text).toMatch(
      /visittag_seq_gap_lost_total\{cause="accepted"\} 3\b/,
    );

    // the same from the CLI against the running gateway
    await a2.publish('rdr-gap-2', batchOf('rdr-gap-2', [9, 10]));
    await a2.waitFor((a) => (a.gaps ?? []).some((x) => x.from === 7 && x.to === 8));
    const cfgFile = join(tmp.dir, 'gateway.json');
    writeFileSync(
      cfgFile,
      JSON.stringify({
        ...testConfig(dir),
        admin: { host: '127.0.0.1', port: g.adminPort, token: ADMIN_TOKEN },
      }),
    );
    const out: string[] = [];
    const err: string[] = [];
    const cli = (args: string[]) =>
      gapsCommand(
        [...args, '--config', cfgFile],
        (l) => out.push(l),
        (l) => err.push(l),
      );
    expect(await cli(['rdr-gap-2'])).toBe(0);
    expect(out).toEqual(['rdr-gap-2: missing 7-8 (2 seq(s))']);
    expect(await cli(['accept', 'rdr-gap-2'])).toBe(64); // no reason
    expect(await cli(['accept', 'rdr-gap-2', '--reason', 'reader replaced'])).toBe(0);
    await a2.waitFor((a) => a.upTo === 10);
    expect(
      dbOf(g).prepare(`SELECT COUNT(*) FROM audit_log WHERE action = 'gap.accepted'`).pluck().get(),
    ).toBe(2);
    await c1.endAsync();
    await c2.endAsync();
  }, 60_000);
});
