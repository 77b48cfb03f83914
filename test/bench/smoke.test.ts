/**
 * Smoke test of the benchmark harness: a tiny run (smoke profile) of the ingest section (real Mosquitto,
 * the gateway, the load generator and the SQLite glue baseline, each in its own process) and of the
 * device-latency section, plus a section whose component is missing. It asserts only that every row
 * comes out well-formed: never a speed (speed belongs in `npm run bench`).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAllWorkers } from '../../bench/lib/child.js';
import { mosquittoAvailable } from '../../bench/lib/mosquitto.js';
import type { Row } from '../../bench/lib/types.js';
import { runBench } from '../../bench/run.js';
import { SECTIONS, type Section } from '../../bench/sections.js';

const out = mkdtempSync(join(tmpdir(), 'visittag-bench-smoke-'));
afterAll(() => {
  killAllWorkers();
  rmSync(out, { recursive: true, force: true });
});

const missing: Section = {
  id: 'missing',
  requires: ['does/not/exist.ts'],
  present: () => false,
  skeleton: () => [
    { id: 'missing-row', figure: 'needs a component', generator: 'n/a', unit: 'x', target: '≥ 1×' },
  ],
  run: () => Promise.reject(new Error('must not run')),
};

function wellFormed(r: Row): void {
  expect(r.id).toMatch(/^[a-z0-9-]+$/);
  expect(r.figure.length).toBeGreaterThan(3);
  expect(r.target.length).toBeGreaterThan(1);
  if (r.value === null) {
    expect(r.met).toBeNull();
    expect(r.note).toMatch(/^n\/a/);
  } else {
    expect(Number.isFinite(r.value)).toBe(true);
    expect(r.value).toBeGreaterThan(0);
    // Context rows (target "— (context)") have no target to meet.
    if (r.target.startsWith('—')) expect(r.met).toBeNull();
    else expect(typeof r.met).toBe('boolean');
  }
  if (r.baseline !== null && r.value !== null) {
    expect(r.baseline).toBeGreaterThan(0);
    expect(r.ratio).toBeCloseTo(r.value / r.baseline, 6);
  }
}

describe('bench harness (smoke profile)', () => {
  it('produces every row, well-formed, prints one table and writes it as JSON', async () => {
    expect(mosquittoAvailable()).toBe(true);
    const pick = (id: string) => SECTIONS.find((s) => s.id === id) as Section;
    const { rows, file, table } = await runBench({
      profile: 'smoke',
      outDir: out,
      verbose: false,
      sections: [pick('ingest'), pick('device-latency'), missing],
    });
    expect(rows.map((r) => r.id)).toEqual([
      'ingest-vs-mosquitto',
      'ingest-vs-glue',
      'ingest-vs-relay-same-payload',
      'ingest-one-tap-vs-glue',
      'device-tap-latency',
      'missing-row',
    ]);
    rows.forEach(wellFormed);
    // The baselines were measured (a real Mosquitto ran), and the gateway row carries both ratios.
    const ingest = rows.filter((r) => r.id.startsWith('ingest-'));
    for (const r of ingest) {
      expect(r.baseline).not.toBeNull();
      expect(r.value).not.toBeNull();
      expect(r.ratio).not.toBeNull();
    }
    expect(rows.find((r) => r.id === 'missing-row')?.note).toBe('n/a (component missing: does/not/exist.ts)');
    // One table with every row and the ratio columns; the JSON file holds the same rows.
    expect(table.split('\n')[0]).toMatch(/figure.*load generator.*value.*baseline.*ratio.*target.*met\?/);
    for (const r of rows) expect(table).toContain(r.figure);
    const json = JSON.parse(readFileSync(file, 'utf8')) as { profile: string; rows: Row[] };
    expect(json.profile).toBe('smoke');
    expect(json.rows).toEqual(JSON.parse(JSON.stringify(rows)));
  }, 180_000);
});
