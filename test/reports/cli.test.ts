/**
 * `visittag-gateway report …` over a real gateway database file holding the fixture municipality's visits, and
 * with `store.engine: "postgres"` over the shared PostgreSQL database holding the same facts (the same output).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readXlsx } from '../../gateway/src/reports/export.js';
import { reportCommand } from '../../gateway/src/reports/cli.js';
import { applyCorrections } from '../../gateway/src/reports/memory-source.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { correctionMigrations } from '../../gateway/src/store/sqlite/corrections-migrations.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { reportMigrations } from '../../gateway/src/store/sqlite/reports/migrations.js';
import { migrate, openPgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { testConfig } from '../gateway/helpers.js';
import { startPgCluster } from '../support/pg-cluster.js';
import { sqliteToPg } from './pg-copy.js';
import { buildFixture } from './fixture.js';
import { writeVisits } from './sqlite-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'visittag-report-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const f = buildFixture('2026-03-23');
const db = openDatabase(join(dir, 'gateway.db'), [...sqliteMigrations, ...correctionMigrations]);
writeVisits(db, applyCorrections(f.visits, f.corrections));
db.close();
const config = join(dir, 'gateway.json');
writeFileSync(config, JSON.stringify(testConfig(dir)));

async function run(...args: string[]) {
  return runWith(config, ...args);
}

async function runWith(configFile: string, ...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await reportCommand(
    [...args, '--config', configFile],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('visittag-gateway report', () => {
  it('executed as JSON: the fixture totals, read from the database', async () => {
    const r = await run(
      'executed',
      '--from',
      '2026-03-23',
      '--to',
      '2026-04-05',
      '--period',
      'range',
      '--by',
      'client',
    );
    expect(r.code).toBe(0);
    const page = JSON.parse(r.out) as {
      total: Record<string, number>;
      quality: { total: Record<string, number> };
    };
    expect(page.total).toMatchObject({
      executedVisits: 180,
      executedMinutes: 4785,
      executedStaffMinutes: 5357,
    });
    expect(page.quality.total).toMatchObject({ visits: 193, corrected: 1, lateDelivered: 1 });
  });

  it('CSV with Swedish headers, XLSX to a file', async () => {
    const csv = await run('quality', '--from', '2026-03-23', '--to', '2026-04-05', '--format', 'csv');
    expect(csv.out.split('\r\n')[0]).toBe(
      'Område;Besök;Autoavslutade;Korrigerade;Okänt kort;Okorrigerbar tid;Sent levererade;Ofullständiga;Felstämplingar (räknas inte);Andel autoavslutade;Andel korrigerade;Andel okänt kort;Andel okorrigerbar tid;Andel sent levererade;Andel felstämplingar',
    );
    // The two withdrawn taps of the fixture: not among the 193 visits, 2 of 195 recorded (0.0103).
    expect(csv.out.split('\r\n')[1]).toBe('(all);193;0;1;1;1;1;0;2;0;0,0052;0,0052;0,0052;0,0052;0,0103');

    const file = join(dir, 'staffing.xlsx');
    const x = await run(
      'staffing',
      '--from',
      '2026-03-23',
      '--to',
      '2026-04-05',
      '--format',
      'xlsx',
      '--out',
      file,
    );
    expect(x.code).toBe(0);
    const [rows] = await readXlsx(readFileSync(file));
    expect(rows!.header[0]).toBe('Område');
  });

  it('store.engine postgres: the same reports from the shared database (not the instance file, which holds none)', async () => {
    const pgc = await startPgCluster();
    try {
      const url = await pgc.createDatabase();
      // the same facts in PostgreSQL (copied from a gateway file of the fixture's visits)
      const seed = openDatabase(join(dir, 'seed.db'), [
        ...sqliteMigrations,
        ...careMigrations,
        ...correctionMigrations,
        ...reportMigrations,
      ]);
      writeVisits(seed, applyCorrections(f.visits, f.corrections));
      const pool = openPgPool({ url, max: 2 });
      try {
        await migrate(pool, postgresMigrations);
        await sqliteToPg(seed, pool);
      } finally {
        seed.close();
        await pool.end();
      }
      const pgDir = join(dir, 'pg');
      const pgConfig = join(dir, 'gateway-pg.json');
      writeFileSync(pgConfig, JSON.stringify(testConfig(pgDir, { store: { engine: 'postgres', url } })));
      for (const args of [
        ['executed', '--from', '2026-03-23', '--to', '2026-04-05', '--period', 'range', '--by', 'client'],
        ['quality', '--from', '2026-03-23', '--to', '2026-04-05', '--format', 'csv'],
        ['continuity', '--from', '2026-03-23', '--lang', 'en'],
      ]) {
        const want = await run(...args);
        const got = await runWith(pgConfig, ...args);
        expect(got.err).toBe('');
        expect(got.code).toBe(0);
        expect(got.out).toBe(want.out);
      }
      expect(
        JSON.parse((await runWith(pgConfig, 'quality', '--from', '2026-03-23', '--to', '2026-04-05')).out),
      ).toMatchObject({ quality: { total: { visits: 193 } } });
    } finally {
      await pgc.destroy();
    }
  }, 120_000);

  it('usage errors name the fix and exit 64', async () => {
    const r = await run('continuity');
    expect(r.code).toBe(64);
    expect(r.err).toContain('--from YYYY-MM-DD is required');
    const bad = await run('executed', '--from', '2026-03-23', '--to', '2026-03-24', '--by', 'staff');
    expect(bad.code).toBe(64);
    expect(bad.err).toContain('--by takes client,team,area,provider,serviceCode (not staff)');
    const monday = await run('continuity', '--from', '2026-03-25');
    expect(monday.code).toBe(1);
    expect(monday.err).toMatch(/starts on a Monday/);
  });
});
