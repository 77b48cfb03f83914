import { describe, expect, it } from 'vitest';
import { sleep } from '../../protocol/index.js';
import { DeviceClock, VirtualClock } from '../../simulator/clock.js';
import { generateScenario, scenarioParams } from '../../simulator/scenario/generate.js';

describe('virtual clock', () => {
  it('fires timers in time order only when advanced, and runs promise continuations between them', async () => {
    const clock = new VirtualClock({ startMs: 1_000_000 });
    const seen: string[] = [];
    clock.setTimeout(() => seen.push(`b@${clock.now()}`), 200);
    clock.setTimeout(() => seen.push(`a@${clock.now()}`), 100);
    const cleared = clock.setTimeout(() => seen.push('cleared'), 150);
    clock.clearTimeout(cleared);
    void sleep(clock, 50).then(() => {
      seen.push(`sleep@${clock.now()}`);
      clock.setTimeout(() => seen.push(`chained@${clock.now()}`), 10);
    });
    expect(seen).toEqual([]);
    await clock.advanceTo(1_000_150);
    expect(seen).toEqual(['sleep@1000050', 'chained@1000060', 'a@1000100']);
    await clock.run(1000, { stepMs: 100 });
    expect(seen.at(-1)).toBe('b@1000200');
    expect(clock.now()).toBe(1_001_150);
    expect(clock.pending).toBe(0);
  });

  it('gives each device its own boot, skew and unsynced wall clock; reboot drops old timers', async () => {
    const master = new VirtualClock({ startMs: 5_000_000 });
    const dev = new DeviceClock(master, { skewMs: 90_000 });
    await master.advanceTo(5_010_000);
    expect(dev.now()).toBe(5_100_000);
    expect(dev.monotonic()).toBe(10_000);
    let fired = false;
    dev.setTimeout(() => (fired = true), 1000);
    dev.reboot({ synced: false, lastWallMs: 4_000_000 });
    await master.advanceTo(5_020_000);
    expect(fired).toBe(false);
    expect(dev.clockSynced()).toBe(false);
    expect(dev.monotonic()).toBe(10_000);
    expect(dev.now()).toBe(4_010_000);
    dev.sync();
    expect(dev.now()).toBe(5_110_000);
  });
});

describe('scenario model', () => {
  it('is reproducible per seed and different across seeds', () => {
    const a = generateScenario(scenarioParams({ seed: 7, readers: 30, staff: 10 }));
    const b = generateScenario(scenarioParams({ seed: 7, readers: 30, staff: 10 }));
    const c = generateScenario(scenarioParams({ seed: 8, readers: 30, staff: 10 }));
    expect(b).toEqual(a);
    expect(c.actions).not.toEqual(a.actions);
  });

  it('plans a realistic day: 4- and 7-byte cards, visit lengths, pairs and every human error', () => {
    const s = generateScenario(scenarioParams({ seed: 42, readers: 300, staff: 80 }));
    const lengths = new Set(s.staff.map((x) => x.card.uid.length / 2));
    expect([...lengths].sort()).toEqual([4, 7]);
    for (const x of s.staff) expect(x.card.cardRef).toMatch(/^c1_[0-9a-f]{32}$/);
    const closed = s.truth.filter((v) => v.endMs !== null && v.kind !== 'unknown-card');
    for (const v of closed) {
      const min = ((v.endMs as number) - v.startMs) / 60_000;
      expect(min).toBeGreaterThanOrEqual(14);
      expect(min).toBeLessThanOrEqual(121);
    }
    expect(closed.some((v) => (v.endMs as number) - v.startMs > 60 * 60_000)).toBe(true);
    const errors = new Set(s.truth.flatMap((v) => v.errors));
    for (const e of [
      'forgotten-stop',
      'double-tap',
      'wrong-reader',
      'unknown-card',
      'card-left-on-reader',
      'bounce',
    ]) {
      expect(errors.has(e as never), e).toBe(true);
    }
    expect(s.truth.some((v) => v.kind === 'double' && v.groupKey !== null)).toBe(true);
    // every action lies inside the day and is time-ordered
    for (let i = 1; i < s.actions.length; i++) {
      expect((s.actions[i]?.atMs ?? 0) >= (s.actions[i - 1]?.atMs ?? 0)).toBe(true);
    }
    // one card never has two overlapping visits at one reader (the ground truth is unambiguous)
    const byKey = new Map<string, typeof s.truth>();
    for (const v of s.truth)
      byKey.set(`${v.readerId}|${v.cardRef}`, [...(byKey.get(`${v.readerId}|${v.cardRef}`) ?? []), v]);
    for (const list of byKey.values()) {
      for (let i = 1; i < list.length; i++) {
        const p = list[i - 1];
        const n = list[i];
        if (!p || !n) continue;
        const pEnd = p.endMs ?? p.startMs + s.params.maxOpenMs;
        expect(n.startMs, `${p.key} then ${n.key}`).toBeGreaterThan(pEnd);
      }
    }
  });
});
