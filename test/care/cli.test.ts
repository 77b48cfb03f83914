import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../gateway/main.js';
import { tempDir, testConfig } from '../gateway/helpers.js';

describe('visittag-gateway plan import (CLI, real SQLite file)', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  it('imports a Windows-1252 file, refuses a file with a bad row whole, and dry-runs', async () => {
    const t = tempDir('vt-plan-cli-');
    cleanup = t.cleanup;
    const cfg = join(t.dir, 'gateway.json');
    writeFileSync(cfg, JSON.stringify(testConfig(join(t.dir, 'data'))));
    const good = join(t.dir, 'plan.csv');
    writeFileSync(
      good,
      Buffer.from(
        'Besöks-id;Brukare;Datum;Starttid;Planerad tid;Insatser\nb-1;k-1;2026-03-29;07:30;22,5;HYG\nb-2;k-2;2026-03-29;08:00;15;TILLSYN\n',
        'latin1',
      ),
    );
    const badFile = join(t.dir, 'bad.csv');
    writeFileSync(
      badFile,
      'Brukare;Datum;Starttid;Planerad tid\nk-1;2026-03-29;07:30;20\nk-2;2026-03-31;08:00;15\n',
    );
    const run = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(
        ['plan', ...args, '--config', cfg],
        (l) => out.push(l),
        (l) => err.push(l),
      );
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const range = ['--area', 'north', '--from', '2026-03-29', '--to', '2026-03-29'];
    const dry = await run(['import', good, ...range, '--dry-run']);
    expect(dry).toMatchObject({
      code: 0,
      out: expect.stringMatching(/dry run: 2 planned visits .*windows-1252.*nothing written/) as unknown,
    });
    const bad = await run(['import', badFile, ...range]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/line 3: date 2026-03-31 is outside the import range/);
    expect(bad.err).toMatch(/1 bad row\(s\): nothing imported/);
    const ok = await run(['import', good, ...range]);
    expect(ok).toMatchObject({
      code: 0,
      out: expect.stringMatching(
        /imported 2 planned visits for north 2026-03-29..2026-03-29 as plan version 1/,
      ) as unknown,
    });
    const usage = await run(['import', good, '--area', 'north']);
    expect(usage.code).toBe(64);
    expect(usage.err).toMatch(/--from YYYY-MM-DD is required/);
  });
});
