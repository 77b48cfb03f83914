import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { main as gatewayMain } from '../../gateway/main.js';
import {
  ADMIN_TOKEN,
  adminGet,
  dbOf,
  silent,
  storedSeqs,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';
import { deviceCli, RunningDevice, simulatedProvisionArgs, writeGatewayCliConfig } from './cli-child.js';

/**
 * Replacing a reader (issue 6), end to end through the real MQTT path: the coordinator's
 * `readers replace OLD` issues a code for a NEW reader id at the same client; provisioning the new Pi
 * retires the old reader (revoked, dropped, its open visit closed with an anomaly); the old Pi's unsent
 * taps can still be delivered later (re-enroll its id); visits before and after belong to the same client.
 */

const refusedRevoked = (gw: Gateway): number => {
  const m = /visittag_mqtt_connections_refused_total\{reason="revoked"\} (\d+)/.exec(gw.metrics.render());
  return m ? Number(m[1]) : 0;
};

interface VisitRow {
  visit_id: string;
  client_ref: string | null;
  state: string;
  end_reason: string | null;
  anomalies_json: string;
}

describe('replacing a reader', () => {
  const tmp = tempDir('vt-prov-replace-');
  let gw: Gateway;
  let gwCfg: string;
  const devices: RunningDevice[] = [];
  beforeAll(async () => {
    gw = createGateway({ config: testConfig(join(tmp.dir, 'gw')), logger: silent });
    trackDataDir(gw, join(tmp.dir, 'gw'));
    await gw.start();
    gwCfg = writeGatewayCliConfig(gw, join(tmp.dir, 'gw'), join(tmp.dir, 'gw-cli.json'));
  });
  afterAll(async () => {
    for (const d of devices) await d.stop();
    await gw.stop();
    tmp.cleanup();
  });

  const cli = async (args: string[]) => {
    const lines: string[] = [];
    const code = await gatewayMain(
      [...args, '--config', gwCfg],
      (l) => lines.push(l),
      (l) => lines.push(l),
    );
    return { code, text: lines.join('\n') };
  };

  /** A device dir with fast reconnects and no repeat window (stop right after start). */
  const deviceDir = (name: string) => {
    const dir = join(tmp.dir, name);
    mkdirSync(dir, { recursive: true });
    const cfg = join(dir, 'device.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        uplink: { backoff: { baseMs: 50, capMs: 200 } },
        visit: { repeatWindowMs: 0, maxOpenMs: 12 * 3_600_000 },
      }),
    );
    return { dir, cfg, data: join(dir, 'data') };
  };
  const provision = (code: string, d: { cfg: string; data: string }) =>
    deviceCli(simulatedProvisionArgs(gw.adminUrl, code, d.cfg, d.data));
  const run = async (d: { cfg: string; dir: string }) => {
    const dev = new RunningDevice(d.cfg, d.dir);
    devices.push(dev);
    await dev.waitFor((l) => l.type === 'ready');
    return dev;
  };
  const tap = async (dev: RunningDevice, uid: string, decision: string) => {
    const n = dev.lines.filter((l) => l.type === 'tap').length;
    dev.send(`tap ${uid}`);
    return dev.waitFor(
      (l) =>
        l.type === 'tap' &&
        dev.lines.filter((x) => x.type === 'tap').indexOf(l) === n &&
        l.decision === decision,
    );
  };
  const view = async (id: string) =>
    (await adminGet(gw, `/api/readers/${id}`)).body as {
      connected: boolean;
      revoked: boolean;
      clientRef: string | null;
      replacedBy: string | null;
      replaces: string | null;
    };
  const visits = (readerId: string) =>
    dbOf(gw)
      .prepare(
        'SELECT visit_id, client_ref, state, end_reason, anomalies_json FROM visits WHERE reader_id = ? ORDER BY rowid',
      )
      .all(readerId) as VisitRow[];

  it('new id at the same client; the old one is retired at provisioning; held taps can still be delivered', async () => {
    const X = '04AABBCCDD4001'; // in the home when the old reader breaks
    const Y = '04AABBCCDD4002'; // a whole visit on the old reader
    const Z = '04AABBCCDD4003'; // tapped on the old reader after it was retired
    const first = await gw.enrollment.issue({ clientRef: 'home-40', label: 'hallway' });
    const oldId = first.readerId;
    const a = deviceDir('old');
    expect((await provision(first.code, a)).code).toBe(0);
    const devA = await run(a);
    await tap(devA, X, 'start');
    await tap(devA, Y, 'start');
    await tap(devA, Y, 'stop');
    await waitUntil(() => storedSeqs(gw, oldId).length === 3, 20_000);
    await waitUntil(async () => (await view(oldId)).connected, 10_000);
    gw.pipeline.processNow([oldId]);
    expect(visits(oldId).map((v) => [v.client_ref, v.state])).toEqual([
      ['home-40', 'open'],
      ['home-40', 'closed'],
    ]);

    // The coordinator issues the replacement code; nothing changes for the old reader yet.
    const rep = await cli(['readers', 'replace', oldId]);
    expect(rep.code).toBe(0);
    const code = /enrollment code: (\S+)/.exec(rep.text)?.[1] ?? '';
    const newId = /new reader: +(\S+) \(replaces (\S+)\)/.exec(rep.text);
    expect(newId?.[2]).toBe(oldId);
    const nid = newId?.[1] ?? '';
    expect(nid).not.toBe(oldId);
    expect(rep.text).toContain('client:          home-40 (hallway)');
    expect(rep.text).toContain(`open visits:     1 at ${oldId}`);
    expect(rep.text).toContain(
      `visittag-device provision --gateway http://127.0.0.1:${gw.adminPort} --code ${code} --allow-plain-http --allow-plain-mqtt`,
    );
    expect((await view(oldId)).connected).toBe(true);
    expect((await view(oldId)).revoked).toBe(false);

    // The technician provisions the new Pi: the old reader is revoked and dropped at once.
    const b = deviceDir('new');
    const refusedBefore = refusedRevoked(gw);
    const p = await provision(code, b);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`provisioned as reader "${nid}" for client home-40`);
    await waitUntil(async () => !(await view(oldId)).connected, 10_000);
    await waitUntil(() => refusedRevoked(gw) >= refusedBefore + 1, 20_000); // it retried and was refused
    expect(await view(oldId)).toMatchObject({ revoked: true, replacedBy: nid, replaces: null });
    expect(await view(nid)).toMatchObject({
      revoked: false,
      clientRef: 'home-40',
      replacedBy: null,
      replaces: oldId,
    });
    const list = (await adminGet(gw, '/api/readers')).body as {
      readers: { readerId: string; replacedBy: string | null; replaces: string | null }[];
    };
    expect(list.readers.find((r) => r.readerId === oldId)).toMatchObject({ replacedBy: nid, replaces: null });
    expect(list.readers.find((r) => r.readerId === nid)).toMatchObject({ replacedBy: null, replaces: oldId });
    const listed = await cli(['readers', 'list']);
    expect(listed.text).toMatch(
      new RegExp(`^${oldId}\\thome-40\\trevoked\\tupTo=3\\treplaced-by=${nid}\\thallway$`, 'm'),
    );

    // X's visit cannot get a stop from a retired reader: closed, flagged, with who and why.
    const [xVisit] = visits(oldId);
    expect(xVisit).toMatchObject({ state: 'closed', end_reason: 'manual' });
    expect(JSON.parse(xVisit?.anomalies_json ?? '[]')).toContain('manual-close');
    const anomalies = (await adminGet(gw, `/api/anomalies?readerId=${oldId}`)).body as {
      anomalies: { kind: string; detail: string }[];
    };
    expect(anomalies.anomalies.find((x) => x.kind === 'manual-close')?.detail).toBe(
      `closed by reader-replace: reader ${oldId} replaced by ${nid}; no stop tap reached the gateway`,
    );

    // The old Pi still registers a tap (it cannot know), and keeps it: nothing is lost.
    await tap(devA, Z, 'start');
    await devA.stop();
    gw.flush();
    expect(storedSeqs(gw, oldId)).toEqual([1, 2, 3]);

    // The new reader: X's next tap starts a new visit, at the same client, with no false anomaly.
    const devB = await run(b);
    await tap(devB, X, 'start');
    await tap(devB, X, 'stop');
    await waitUntil(() => storedSeqs(gw, nid).length === 2, 20_000);
    gw.pipeline.processNow([nid]);
    const after = visits(nid);
    expect(after.map((v) => [v.client_ref, v.state, v.end_reason])).toEqual([['home-40', 'closed', 'tap']]);
    expect(JSON.parse(after[0]?.anomalies_json ?? '[]')).not.toContain('concurrent-visit');
    await devB.stop();

    // Decision on the old Pi's held tap: deliver it under its own id (re-enroll), then retire it again.
    const again = await gw.enrollment.issue({ clientRef: 'home-40', readerId: oldId });
    const reprov = await provision(again.code, a);
    expect(reprov.code).toBe(0);
    const devA2 = await run(a);
    await waitUntil(() => storedSeqs(gw, oldId).length === 4, 20_000);
    await devA2.stop();
    gw.pipeline.processNow([oldId]);
    expect(visits(oldId).map((v) => [v.client_ref, v.state])).toEqual([
      ['home-40', 'closed'],
      ['home-40', 'closed'],
      ['home-40', 'open'],
    ]);
    expect((await view(oldId)).replacedBy).toBe(nid); // the link stays
    expect((await cli(['readers', 'revoke', oldId])).code).toBe(0);
    // Retired again: Z's visit can never get a stop from it, so it is closed like X's was.
    await waitUntil(() => visits(oldId).every((v) => v.state === 'closed'), 10_000);
    expect(visits(oldId).map((v) => [v.state, v.end_reason])).toEqual([
      ['closed', 'manual'],
      ['closed', 'tap'],
      ['closed', 'manual'], // Z's, the held tap delivered late
    ]);
  }, 180_000);

  it('refuses plainly: unknown reader, a reader already replaced; the admin API does the same', async () => {
    const unknown = await cli(['readers', 'replace', 'rdr-nosuch']);
    expect(unknown.code).toBe(1);
    expect(unknown.text).toContain('unknown reader rdr-nosuch');
    expect((await cli(['readers', 'replace'])).code).toBe(64);

    await gw.registry.addReader({ readerId: 'rdr-api-old', clientRef: 'home-41', label: 'kitchen' });
    const res = await fetch(`${gw.adminUrl}/api/readers/rdr-api-old/replace`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ label: 'kitchen, new box', ttlMinutes: 30 }),
    });
    expect(res.status).toBe(201);
    const issued = (await res.json()) as {
      code: string;
      readerId: string;
      clientRef: string;
      label: string;
      replaces: string;
    };
    expect(issued).toMatchObject({
      clientRef: 'home-41',
      label: 'kitchen, new box',
      replaces: 'rdr-api-old',
    });
    const enrollments = (await adminGet(gw, '/api/enrollments')).body as {
      enrollments: { readerId: string; replaces: string | null; state: string }[];
    };
    expect(enrollments.enrollments.find((e) => e.readerId === issued.readerId)).toMatchObject({
      replaces: 'rdr-api-old',
      state: 'pending',
    });
    const ex = await gw.enrollment.exchange({ code: issued.code, source: '127.0.0.1' });
    expect(ex.ok).toBe(true);
    expect(gw.registry.getReader('rdr-api-old')?.revokedAt).not.toBeNull();
    const twice = await fetch(`${gw.adminUrl}/api/readers/rdr-api-old/replace`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(twice.status).toBe(409);
    expect(((await twice.json()) as { error: string }).error).toBe(
      `reader rdr-api-old was already replaced by ${issued.readerId} (to provision ${issued.readerId} again: ` +
        `visittag-gateway readers enroll --client home-41 --reader ${issued.readerId})`,
    );
    // A second replacement code for the same reader withdraws the first (one replacement at a time).
    await gw.registry.addReader({ readerId: 'rdr-api-old2', clientRef: 'home-42' });
    const c1 = await gw.replacements.issue('rdr-api-old2');
    const c2 = await gw.replacements.issue('rdr-api-old2');
    expect(c2.readerId).not.toBe(c1.readerId);
    expect((await gw.enrollment.exchange({ code: c1.code, source: '127.0.0.2' })).body).toMatchObject({
      error: 'expired-code',
    });
    expect(gw.registry.getReader('rdr-api-old2')?.revokedAt).toBeNull();
    expect((await gw.enrollment.exchange({ code: c2.code, source: '127.0.0.2' })).ok).toBe(true);
    expect((await gw.replacements.links('rdr-api-old2')).replacedBy).toBe(c2.readerId);
    const none = await fetch(`${gw.adminUrl}/api/readers/rdr-nosuch/replace`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(none.status).toBe(404);
  }, 30_000);
});
