import { describe, expect, it } from 'vitest';
import type { FleetStore } from '../../gateway/src/store/ports.js';

/**
 * The FleetStore port's contract (pushed reader config, reader replacements), through the interface
 * only, every call awaited. Each adapter supplies a fresh, migrated, empty store and `close`.
 */
export interface FleetFixture {
  store: FleetStore;
  close: () => Promise<void>;
}

export function describeFleetStoreContract(name: string, make: () => Promise<FleetFixture>): void {
  describe(`FleetStore contract: ${name}`, () => {
    const withStore = async (fn: (s: FleetStore) => Promise<void>) => {
      const f = await make();
      try {
        await fn(f.store);
      } finally {
        await f.close();
      }
    };

    it('keeps the last pushed config per reader', () =>
      withStore(async (f) => {
        expect(await f.lastConfig('r-f')).toBeUndefined();
        await f.saveConfig('r-f', { version: 1, configJson: '{"a":1}', pushedAtMs: 10 });
        await f.saveConfig('r-g', { version: 7, configJson: '{"b":1}', pushedAtMs: 11 });
        await f.saveConfig('r-f', { version: 2, configJson: '{"a":2}', pushedAtMs: 20 });
        expect(await f.lastConfig('r-f')).toEqual({ version: 2, configJson: '{"a":2}', pushedAtMs: 20 });
        expect(await f.lastConfig('r-g')).toEqual({ version: 7, configJson: '{"b":1}', pushedAtMs: 11 });
      }));

    it('records a replacement and shows the link from both sides', () =>
      withStore(async (f) => {
        expect(await f.links('r-f')).toEqual({ replacedBy: null, replaces: null, replacedAtMs: null });
        await f.recordReplacement({
          oldReaderId: 'r-f',
          newReaderId: 'r-g',
          clientRef: 'c',
          replacedAtMs: 30,
          closedVisits: 1,
        });
        await f.recordReplacement({
          oldReaderId: 'r-g',
          newReaderId: 'r-h',
          clientRef: 'c',
          replacedAtMs: 50,
          closedVisits: 0,
        });
        expect(await f.links('r-f')).toEqual({ replacedBy: 'r-g', replaces: null, replacedAtMs: 30 });
        expect(await f.links('r-g')).toEqual({ replacedBy: 'r-h', replaces: 'r-f', replacedAtMs: 50 });
        expect(await f.links('r-h')).toEqual({ replacedBy: null, replaces: 'r-g', replacedAtMs: null });
      }));

    it('a reader is replaced once and a new reader replaces only one', () =>
      withStore(async (f) => {
        const rec = { clientRef: null, replacedAtMs: 40, closedVisits: 0 };
        await f.recordReplacement({ ...rec, oldReaderId: 'r-a', newReaderId: 'r-b' });
        const again = (oldReaderId: string, newReaderId: string) =>
          Promise.resolve().then(() => f.recordReplacement({ ...rec, oldReaderId, newReaderId }));
        await expect(again('r-a', 'r-c')).rejects.toThrow();
        await expect(again('r-x', 'r-b')).rejects.toThrow();
        expect(await f.links('r-a')).toMatchObject({ replacedBy: 'r-b' });
        expect(await f.links('r-x')).toMatchObject({ replacedBy: null });
      }));
  });
}
