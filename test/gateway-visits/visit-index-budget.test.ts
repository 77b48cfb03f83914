/**
 * The visit index's memory bound (store/sqlite/visit-index.ts, config `store.visitIndexMaxVisits`): through the
 * real engine, thousands of visits by a few staff members keep the index at its budget, every answer still
 * checked against SQLite (createEnv's verifyVisitIndex), a concurrent visit still flagged; and the config's
 * limits name the setting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseGatewaySettings } from '../../gateway/src/config.js';
import type { TapEvent } from '../../protocol/index.js';
import {
  addReader,
  card,
  createEnv,
  FakeClock,
  ingestBatch,
  ofType,
  outboxEvents,
  T0,
  tap,
  type TestEnv,
} from './helpers.js';

let env: TestEnv | null = null;
afterEach(async () => {
  await env?.close();
  env = null;
});

const MIN = 60_000;

describe('visit index budget', () => {
  /** The scenario on one engine: the outbox's anomaly events, the most the index held, and its sweeps. */
  const run = (budget: number | undefined) => {
    const clock = new FakeClock(T0);
    const e = createEnv({
      fakeClock: clock,
      ...(budget !== undefined ? { visitIndexMaxVisits: budget } : {}),
    });
    env = e;
    const readers = 20;
    for (let r = 0; r < readers; r++) {
      addReader(e.db, `r${r}`, `home-${r}`);
      e.pipeline.registry.addCard({ cardRef: card(r + 1), staffRef: `s${r % 4}` });
    }
    // 20 readers, 4 staff members (5 cards each, one card per reader), 10-minute visits one after another at
    // each reader: 2,000 visits in all, 20 times the small budget. A staff member's five readers start within
    // seconds of each other: their visits overlap, and the engine, asking the index on every start, flags them.
    const perRound = 20;
    let held = 0;
    for (let round = 0; round < 10; round++) {
      for (let r = 0; r < readers; r++) {
        const events: TapEvent[] = [];
        for (let i = 1; i <= perRound; i++) {
          const s = round * perRound + i;
          events.push(
            tap(`r${r}`, s, {
              card: card(r + 1),
              decision: s % 2 ? 'start' : 'stop',
              visitId: `v${r}-${Math.ceil(s / 2)}`,
              time: { wallMs: T0 + s * 10 * MIN + r * 1000 },
            }),
          );
        }
        ingestBatch(e.db, { readerId: `r${r}`, events });
      }
      clock.advance(T0 + (round + 1) * perRound * 10 * MIN - clock.now());
      e.pipeline.processNow();
      const n = e.pipeline.visitWriter.repo.index.size();
      held = Math.max(held, n.staffVisits + n.cardVisits);
    }
    const index = e.pipeline.visitWriter.repo.index;
    const now = index.size();
    const gauge = Number(/^visittag_visit_index_visits (\d+)$/m.exec(e.metrics.render())?.[1]);
    expect(gauge).toBe(now.staffVisits + now.cardVisits);
    const anomalies = ofType(outboxEvents(e.db), 'visit.anomaly').map(
      (a) => `${a.readerId}/${a.visitId}/${a.anomaly}`,
    );
    return { anomalies, held, sweeps: index.stats.sweeps };
  };

  it('holds at most its budget through the engine, answers like SQLite, and flags the same visits as without one', async () => {
    const unbounded = run(undefined);
    await env?.close();
    env = null;
    const bounded = run(100);
    expect(unbounded.sweeps).toBe(0);
    expect(unbounded.held).toBe(2_000);
    expect(bounded.sweeps).toBeGreaterThan(5);
    // the budget plus what one write adds before its sweep (open visits are kept: 20 at most here)
    expect(bounded.held).toBeLessThanOrEqual(100 + 20 + 1);
    expect(bounded.anomalies.filter((a) => a.endsWith('/concurrent-visit')).length).toBeGreaterThan(100);
    expect(bounded.anomalies).toEqual(unbounded.anomalies);
  });

  it('the config default is 50,000; a budget below 1,000 is refused, naming the setting', () => {
    const base = { dataDir: '/tmp/x', fleetKey: 'k'.repeat(32), admin: { token: 'x'.repeat(16) } };
    const ok = parseGatewaySettings({ ...base, store: { engine: 'sqlite' } });
    expect(ok.ok && ok.config.store?.engine === 'sqlite' && ok.config.store.visitIndexMaxVisits).toBe(50_000);
    const bad = parseGatewaySettings({ ...base, store: { engine: 'sqlite', visitIndexMaxVisits: 10 } });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toContain('store.visitIndexMaxVisits');
  });
});
