import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { localDateOf, utcToLocal } from '../../gateway/src/care/time.js';
import { childArgv, prepareChildEntry } from '../../simulator/child-entry.js';
import { startFakeBackend, type FakeBackend } from '../../simulator/fake-backend.js';
import { silent, tempDir, testConfig } from '../gateway/helpers.js';

const REPO = resolve(import.meta.dirname, '../..');
const SECRET = 'care-crash-webhook-secret';
const KILLS = 4;
// the child from one esbuild bundle, built once, instead of through tsx at each of its KILLS + 1 starts
const CHILD = join(REPO, 'test/care/alert-child.ts');
await prepareChildEntry(CHILD);

function startChild(cfg: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [...childArgv(CHILD), cfg], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((res, rej) => {
    proc.stdout.on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) res(proc);
    });
    proc.on('exit', (code) => rej(new Error(`child exited early (${code})`)));
  });
}
const killed = (p: ChildProcess) =>
  new Promise<void>((res) => {
    p.once('exit', () => res());
    p.kill('SIGKILL');
  });

describe('plan alerts across a gateway SIGKILL', () => {
  const t = tempDir('vt-care-crash-');
  let be: FakeBackend | undefined;
  afterAll(async () => {
    await be?.close();
    t.cleanup();
  });

  it('each alert reaches the backend once by idempotency key, with the same content', async () => {
    be = await startFakeBackend({ secret: SECRET });
    const config = testConfig(join(t.dir, 'data'), { backend: { url: be.url, secret: SECRET } });
    const cfg = join(t.dir, 'gateway.json');
    writeFileSync(cfg, JSON.stringify(config));
    // The plan: 30 visits that started 20 to 140 minutes ago (late, some missed), all today or yesterday.
    const now = Date.now();
    const gw = createGateway({ config, logger: silent });
    const rows = Array.from({ length: 30 }, (_, i) => {
      const l = utcToLocal(now - (20 + i * 4) * 60_000);
      return {
        plannedVisitId: `pv-${i}`,
        clientRef: `k-${i % 7}`,
        date: l.date,
        start: l.time,
        plannedMinutes: 20,
      };
    });
    const dates = rows.map((r) => r.date).sort();
    const r = await gw.care.plan.importPlan({
      areaId: 'north',
      fromDate: dates[0]!,
      toDate: localDateOf(now),
      dryRun: false,
      actor: 'test',
      source: 'test',
      rows,
    });
    expect(r.ok).toBe(true);
    await gw.stop();

    for (let k = 0; k < KILLS; k++) {
      const child = await startChild(cfg);
      await new Promise((res) => setTimeout(res, 40 + k * 60));
      await killed(child);
    }
    const last = await startChild(cfg);
    const deadline = Date.now() + 30_000;
    const missed = rows.filter((_, i) => 20 + i * 4 >= 60).length;
    while (be.received().length < 30 + missed && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 100));
    await killed(last);
    const keys = be.received().map((e) => e.idempotencyKey);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.filter((k) => k.endsWith(':late:raised'))).toHaveLength(30);
    expect(keys.filter((k) => k.endsWith(':missed:raised'))).toHaveLength(missed);
    expect(be.conflicts).toBe(0);
  }, 90_000);
});
