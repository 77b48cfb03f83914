/**
 * The care plan's sweep tick is a setting of the settings file (`care.tickSeconds`, issue 14): on PostgreSQL the
 * sweep lease lasts three ticks, so after its holder dies alerts wait up to about four ticks (two minutes at the
 * default 30 s). Both roots take it; the caller's own care settings still win; a bad value is refused.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { createPgGateway } from '../../gateway/pg-instance.js';
import { parseGatewaySettings } from '../../gateway/src/config.js';
import { silent, tempDir, testConfig } from '../gateway/helpers.js';

describe('care.tickSeconds in the settings file', () => {
  const tmp = tempDir('vt-care-tick-');
  afterAll(() => tmp.cleanup());

  it('sets the tick of the SQLite root; absent, the default 30 s; the caller wins', async () => {
    const gw = createGateway({
      config: testConfig(join(tmp.dir, 'a'), { care: { tickSeconds: 5 } }),
      logger: silent,
    });
    try {
      expect(gw.care.plan.config.tickMs).toBe(5_000);
    } finally {
      await gw.stop();
    }
    const plain = createGateway({ config: testConfig(join(tmp.dir, 'b')), logger: silent });
    try {
      expect(plain.care.plan.config.tickMs).toBe(30_000);
    } finally {
      await plain.stop();
    }
    const given = createGateway({
      config: testConfig(join(tmp.dir, 'c'), { care: { tickSeconds: 5 } }),
      logger: silent,
      care: { tickMs: 1_000 },
    });
    try {
      expect(given.care.plan.config.tickMs).toBe(1_000);
    } finally {
      await given.stop();
    }
  });

  it('sets the tick (and so the sweep lease) of the PostgreSQL root', async () => {
    // built, not started: no database is reached
    const gw = createPgGateway({
      config: testConfig(join(tmp.dir, 'pg'), {
        care: { tickSeconds: 10 },
        store: { engine: 'postgres', url: 'postgres://nobody@127.0.0.1:1/none' },
      }),
      logger: silent,
    });
    try {
      expect(gw.carePlan.config.tickMs).toBe(10_000);
    } finally {
      await gw.stop();
    }
  });

  it('refuses a tick of 0 or above an hour, and unknown keys', () => {
    const base = testConfig(join(tmp.dir, 'parse'));
    for (const care of [{ tickSeconds: 0 }, { tickSeconds: 3601 }, { tick: 5 }]) {
      const r = parseGatewaySettings({ ...base, care });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toContain('care');
    }
    const ok = parseGatewaySettings({ ...base, care: { tickSeconds: 15 } });
    expect(ok.ok && ok.config.care).toEqual({ tickSeconds: 15 });
  });
});
