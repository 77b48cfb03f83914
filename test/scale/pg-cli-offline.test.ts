import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../gateway/main.js';
import { migrate, openPgPool, type PgPool } from '../../gateway/src/store/postgres/db.js';
import { postgresMigrations } from '../../gateway/src/store/postgres/migrations.js';
import { PgReaderDirectory } from '../../gateway/src/store/postgres/reader-directory.js';
import { tempDir, testConfig } from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';

const NO_CACHE = {
  get: () => undefined,
  set: () => undefined,
  delete: () => undefined,
  flush: () => undefined,
};
const card = (n: number) => `c1_${n.toString(16).padStart(32, '0')}`;

/**
 * The offline CLI on a `store.engine: "postgres"` config (issue 14): with no instance of the config
 * running, `readers add|list|enroll|replace|revoke|move`, `cards import|assign|unknown`, the card lifecycle
 * (`cards revoke|reinstate|validity|replace`, `cards import --full`) and `user add|list` change the
 * PostgreSQL database the instances share. The local SQLite file is never created by them (before,
 * they wrote only there and no instance read it).
 */
describe('offline CLI on a postgres config writes PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let pool: PgPool;
  let url: string;
  beforeAll(async () => {
    pgc = await startPgCluster();
    tmp = tempDir('vt-pg-cli-');
    url = await pgc.createDatabase();
    pool = openPgPool({ url, max: 2 });
  }, 120_000);
  afterAll(async () => {
    await pool?.end();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it('readers revoke/move, cards import/assign/unknown and user add/list', { timeout: 120_000 }, async () => {
    const dataDir = join(tmp.dir, 'gw');
    const cfgFile = join(tmp.dir, 'gw.json');
    writeFileSync(
      cfgFile,
      JSON.stringify(testConfig(dataDir, { store: { engine: 'postgres', url, poolMax: 2 } })),
    );
    const out: string[] = [];
    const err: string[] = [];
    const run = (argv: string[]) =>
      main(
        [...argv, '--config', cfgFile],
        (l) => out.push(l),
        (l) => err.push(l),
      );
    // two readers in the shared registry, as an instance would have put them there
    await migrate(pool, postgresMigrations);
    const d = new PgReaderDirectory({ pool, url, authTags: NO_CACHE, logger: { warn: () => undefined } });
    await d.pull();
    for (const id of ['r-1', 'r-2']) {
      await d.insertReader({
        readerId: id,
        passwordHash: 'not-a-hash',
        clientRef: 'home-1',
        label: null,
        revokedAt: null,
        createdAt: 1,
      });
    }
    const q = async (sql: string, params: unknown[] = []) =>
      (await pool.query<Record<string, unknown>>(sql, params)).rows;

    expect(await run(['readers', 'revoke', 'r-1'])).toBe(0);
    expect(out.join('\n')).toContain('revoked on PostgreSQL');
    expect((await q(`SELECT revoked_at FROM readers WHERE reader_id = 'r-1'`))[0]?.revoked_at).not.toBeNull();
    expect(await run(['readers', 'move', 'r-2', '--client', 'home-9'])).toBe(0);
    expect(await q(`SELECT client_ref FROM readers WHERE reader_id = 'r-2'`)).toEqual([
      { client_ref: 'home-9' },
    ]);
    expect(
      await q(`SELECT client_ref FROM reader_client_history WHERE reader_id = 'r-2' ORDER BY from_ms`),
    ).toEqual([{ client_ref: 'home-1' }, { client_ref: 'home-9' }]);
    expect(await run(['readers', 'revoke', 'r-nobody'])).toBe(1);
    expect(err.join('\n')).toContain('unknown reader r-nobody');

    const csv = join(tmp.dir, 'cards.csv');
    writeFileSync(csv, ['staff;card_ref', `nurse-1;${card(1)}`, `nurse-2;${card(2)}`].join('\n'));
    expect(await run(['cards', 'import', csv])).toBe(0);
    expect(await q('SELECT card_ref, staff_ref FROM cards ORDER BY card_ref')).toEqual([
      { card_ref: card(1), staff_ref: 'nurse-1' },
      { card_ref: card(2), staff_ref: 'nurse-2' },
    ]);
    expect(await run(['cards', 'assign', card(3), '--staff', 'nurse-3'])).toBe(0);
    expect(await q('SELECT staff_ref FROM cards WHERE card_ref = $1', [card(3)])).toEqual([
      { staff_ref: 'nurse-3' },
    ]);
    // registered to someone else: refused without --reassign, as on SQLite
    expect(await run(['cards', 'assign', card(3), '--staff', 'nurse-4'])).toBe(1);
    expect(await run(['cards', 'unknown'])).toBe(0);

    out.length = 0;
    expect(await run(['user', 'add', 'anna.s', '--role', 'coordinator', '--areas', 'north'])).toBe(0);
    const password = /password \(shown once[^)]*\): (\S+)/.exec(out.join('\n'))?.[1] ?? '';
    expect(password.length).toBeGreaterThan(12);
    const users = await q(`SELECT name, role, areas_json, password_hash FROM auth_users`);
    expect(users).toMatchObject([{ name: 'anna.s', role: 'coordinator', areas_json: '["north"]' }]);
    expect(String(users[0]?.password_hash)).not.toContain(password);
    expect(await q(`SELECT actor, action FROM audit_log WHERE action = 'user.create'`)).toEqual([
      { actor: expect.stringMatching(/^cli:/) as string, action: 'user.create' },
    ]);
    out.length = 0;
    expect(await run(['user', 'list'])).toBe(0);
    expect(out.join('\n')).toMatch(/^anna\.s\tcoordinator\tnorth/m);

    // none of it went to (or even created) the local SQLite file
    expect(existsSync(join(dataDir, 'gateway.db'))).toBe(false);
  });

  it('readers add/list/enroll/replace and the card lifecycle', { timeout: 120_000 }, async () => {
    const dataDir = join(tmp.dir, 'gw-fleet');
    const cfgFile = join(tmp.dir, 'gw-fleet.json');
    const fleetUrl = await pgc.createDatabase();
    writeFileSync(
      cfgFile,
      JSON.stringify(testConfig(dataDir, { store: { engine: 'postgres', url: fleetUrl, poolMax: 2 } })),
    );
    const db = openPgPool({ url: fleetUrl, max: 2 });
    const out: string[] = [];
    const err: string[] = [];
    const run = (argv: string[]) => {
      out.length = 0;
      return main(
        [...argv, '--config', cfgFile],
        (l) => out.push(l),
        (l) => err.push(l),
      );
    };
    const q = async (sql: string, params: unknown[] = []) =>
      (await db.query<Record<string, unknown>>(sql, params)).rows;
    try {
      expect(await run(['readers', 'add', 'r-10', '--client', 'home-10', '--label', 'hall'])).toBe(0);
      expect(out.join('\n')).toMatch(/^password: \S{20,}/m);
      const added = await q(`SELECT client_ref, label, password_hash FROM readers WHERE reader_id = 'r-10'`);
      expect(added).toMatchObject([{ client_ref: 'home-10', label: 'hall' }]);
      expect(String(added[0]?.password_hash)).toMatch(/^\$?scrypt|^\S{20,}/);

      expect(await run(['readers', 'enroll', '--client', 'home-11', '--reader', 'r-11'])).toBe(0);
      expect(out.join('\n')).toMatch(/enrollment code: \S+/);
      expect(await q(`SELECT reader_id, client_ref FROM enrollments WHERE reader_id = 'r-11'`)).toEqual([
        { reader_id: 'r-11', client_ref: 'home-11' },
      ]);

      expect(await run(['readers', 'replace', 'r-10'])).toBe(0);
      const newId = /new reader:\s+(\S+) \(replaces r-10\)/.exec(out.join('\n'))?.[1];
      expect(newId).toBeDefined();
      expect(
        await q(
          `SELECT client_ref, label FROM enrollments WHERE replaces_reader_id = 'r-10' AND reader_id = $1`,
          [newId],
        ),
      ).toEqual([{ client_ref: 'home-10', label: 'hall' }]);
      expect(await run(['readers', 'replace', 'r-none'])).toBe(1);
      expect(err.join('\n')).toContain('unknown reader r-none');

      expect(await run(['readers', 'list', '--json'])).toBe(0);
      const listed = JSON.parse(out.join('\n')) as {
        readers: Array<{ readerId: string; clientRef: string }>;
      };
      expect(listed.readers.map((r) => [r.readerId, r.clientRef])).toEqual([['r-10', 'home-10']]);

      // the card lifecycle
      for (const [n, staff] of [
        [1, 'nurse-1'],
        [2, 'nurse-2'],
        [3, 'nurse-3'],
      ] as const)
        expect(await run(['cards', 'assign', card(n), '--staff', staff])).toBe(0);
      expect(await run(['cards', 'revoke', card(1), '--reason', 'lost'])).toBe(0);
      expect(out.join('\n')).toContain('changed in PostgreSQL');
      expect(
        (await q('SELECT revoked_at FROM cards WHERE card_ref = $1', [card(1)]))[0]?.revoked_at,
      ).not.toBeNull();
      expect(await run(['cards', 'reinstate', card(1), '--reason', 'found'])).toBe(0);
      expect(await q('SELECT revoked_at FROM cards WHERE card_ref = $1', [card(1)])).toEqual([
        { revoked_at: null },
      ]);
      expect(await run(['cards', 'validity', card(2), '--from', '2026-01-01', '--to', '2027-01-01'])).toBe(0);
      expect(await q('SELECT valid_from_ms, valid_to_ms FROM cards WHERE card_ref = $1', [card(2)])).toEqual([
        { valid_from_ms: Date.parse('2026-01-01'), valid_to_ms: Date.parse('2027-01-01') },
      ]);
      expect(await run(['cards', 'replace', card(2), '--new', card(4)])).toBe(0);
      expect(await q('SELECT staff_ref, valid_to_ms FROM cards WHERE card_ref = $1', [card(4)])).toEqual([
        { staff_ref: 'nurse-2', valid_to_ms: Date.parse('2027-01-01') },
      ]);
      expect(await q('SELECT replaced_by FROM cards WHERE card_ref = $1', [card(2)])).toEqual([
        { replaced_by: card(4) },
      ]);
      const csv = join(tmp.dir, 'full.csv');
      writeFileSync(csv, ['staff;card_ref', `nurse-1;${card(1)}`, `nurse-2;${card(4)}`].join('\n'));
      expect(await run(['cards', 'import', csv, '--full'])).toBe(0);
      expect(out.join('\n')).toContain(`withdrew 1 card(s) missing from the full list: ${card(3)}`);
      expect(
        (await q(`SELECT action, target FROM audit_log WHERE action LIKE 'card.%' ORDER BY seq`)).map(
          (r) => `${String(r.action)} ${String(r.target)}`,
        ),
      ).toEqual([
        `card.revoke ${card(1)}`,
        `card.reinstate ${card(1)}`,
        `card.validity ${card(2)}`,
        `card.replace ${card(2)}`,
        'card.withdraw-missing 1 card(s)',
      ]);
      // none of it went to (or even created) the local SQLite file
      expect(existsSync(join(dataDir, 'gateway.db'))).toBe(false);
    } finally {
      await db.end();
    }
  });
});
