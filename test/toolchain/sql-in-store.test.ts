import { Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module without types, shared with eslint.config.js
import { sqlOutsideStore, sqlOutsideStoreYet } from '../../scripts/lint/sql-in-store.js';

// "No SQL outside the store adapters" is a lint rule (eslint.config.js, gateway/ outside gateway/src/store/), so
// `npm run lint` fails on it. Here: each shape of SQL fires, and the look-alikes of ordinary code do not.
const linter = new Linter({ configType: 'flat' });
const config = [
  {
    files: ['**/*.ts'],
    languageOptions: { parser: tseslint.parser },
    rules: { 'no-restricted-syntax': ['error', ...(sqlOutsideStore as unknown[])] },
  },
] as Linter.Config[];

const fired = (code: string): string[] =>
  linter.verify(code, config, 'gateway/src/probe.ts').map((m) => m.message.split(':')[0] ?? '');

describe('no SQL outside gateway/src/store/ (lint rule)', () => {
  it.each([
    ["const q = 'SELECT id FROM visits WHERE reader_id = ?';", 'SQL statement outside gateway/src/store/'],
    ['const q = `\n  INSERT INTO outbox (body) VALUES (?)`;', 'SQL statement outside gateway/src/store/'],
    ["db.exec('CREATE TABLE x (a INTEGER)');", 'SQL statement outside gateway/src/store/'],
    [
      "const w = ' AND v.client_ref IN (SELECT 1)' + ' FROM care_clients';",
      'SQL clause outside gateway/src/store/',
    ],
    ['const s = `${head} WHERE started_at >= ${from}`;', 'SQL clause outside gateway/src/store/'],
    ["const u = ' ON CONFLICT (id) DO NOTHING';", 'SQL clause outside gateway/src/store/'],
    [
      'db.prepare(sql).get(1);',
      'A database statement API (.prepare/.pragma/.transaction/.query) outside gateway/src/store/',
    ],
    [
      "db.pragma('journal_mode');",
      'A database statement API (.prepare/.pragma/.transaction/.query) outside gateway/src/store/',
    ],
    [
      'const tx = db.transaction(() => 1);',
      'A database statement API (.prepare/.pragma/.transaction/.query) outside gateway/src/store/',
    ],
    [
      'await pool.query(sql, [1]);',
      'A database statement API (.prepare/.pragma/.transaction/.query) outside gateway/src/store/',
    ],
    [
      'const q = `WITH recent AS (SELECT 1) SELECT * FROM recent`;',
      'SQL statement outside gateway/src/store/',
    ],
    ['db.exec(`DROP TABLE x`);', 'A database .exec of SQL outside gateway/src/store/'],
  ])('fires on %s', (code, message) => {
    expect(fired(code)).toContain(message);
  });

  it.each([
    "const method = 'DELETE';",
    "if (req.method === 'UPDATE' || req.method === 'SELECT') return;",
    'const m = /^(\\d+)$/.exec(text);',
    "const label = 'Select a reader from the list';",
    "const sv = 'Välj en läsare från listan';",
    'const msg = `Set the period lock first, then close the visit`;',
    'const order = `ordered by started_at`;',
    "throw new Error('WITH no key file the gateway cannot start');",
    "const w = 'WITH care AS THE AIM';",
  ])('stays quiet on %s', (code) => {
    expect(fired(code)).toEqual([]);
  });

  it('the list of files not yet moved only names files that exist and still hold SQL', async () => {
    const { existsSync, readFileSync } = await import('node:fs');
    for (const f of sqlOutsideStoreYet as string[]) {
      expect(existsSync(f), `${f} is gone: take it off sqlOutsideStoreYet`).toBe(true);
      expect(
        fired(readFileSync(f, 'utf8')).length,
        `${f} holds no SQL now: take it off sqlOutsideStoreYet`,
      ).toBeGreaterThan(0);
    }
  });
});
