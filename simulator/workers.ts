/**
 * The workers' side of a run: performs scripted card actions on the virtual readers, records what
 * each tap showed (its feedback), and replays taps that met a dead reader once it is back (the
 * worker saw nothing, so taps again).
 */
import type { FeedbackSeen, TapRecord } from './checker.js';
import type { VirtualReader } from './readers/types.js';
import type { Action } from './scenario/types.js';
import type { World } from './world.js';

const TAP_PATTERNS = new Set(['visit-started', 'visit-ended', 'repeat', 'rejected', 'fault-storage']);

export interface Workers {
  readonly taps: TapRecord[];
  readonly feedbackCounts: Record<string, number>;
  readonly retried: number;
  perform(a: Action): Promise<void>;
  replay(readerId: string): Promise<void>;
  sweep(): void;
}

export function createWorkers(world: World): Workers {
  const taps: TapRecord[] = [];
  const awaiting = new Map<string, TapRecord[]>();
  const retry = new Map<string, { a: Action; rec: TapRecord | null }[]>();
  const unanswered: { rec: TapRecord; a: Action; deadline: number }[] = [];
  const feedbackCounts: Record<string, number> = {};
  let retried = 0;

  for (const [id, r] of world.readers) {
    awaiting.set(id, []);
    retry.set(id, []);
    r.onSignal = (pattern) => {
      if (!TAP_PATTERNS.has(pattern)) return;
      const rec = awaiting.get(id)?.shift();
      if (rec) {
        rec.feedback = pattern as FeedbackSeen;
        feedbackCounts[pattern] = (feedbackCounts[pattern] ?? 0) + 1;
      }
    };
  }

  /** Child readers answer asynchronously: virtual time stands still until they have handled it. */
  const act = async (vr: VirtualReader, a: Action): Promise<void> => {
    const p = vr.act(a.kind, a.uid);
    if (p) await world.whileRunning(p, 0);
  };
  const press = async (a: Action, rec: TapRecord): Promise<void> => {
    const vr = world.readers.get(a.readerId);
    if (!vr) return;
    if (!vr.alive) {
      retry.get(a.readerId)?.push({ a, rec });
      return;
    }
    awaiting.get(a.readerId)?.push(rec);
    unanswered.push({ rec, a, deadline: world.clock.now() + 30_000 });
    await act(vr, a);
    sweepUnanswered();
  };
  const perform = async (a: Action): Promise<void> => {
    const vr = world.readers.get(a.readerId);
    if (!vr) return;
    if (a.kind === 'remove' || a.intent === null) {
      if (vr.alive) await act(vr, a);
      else retry.get(a.readerId)?.push({ a, rec: null }); // replayed in order with the taps
      return;
    }
    const rec: TapRecord = {
      readerId: a.readerId,
      cardRef: a.cardRef,
      staffRef: a.staffRef,
      atMs: world.clock.now(),
      intent: a.intent,
      visitKey: a.visitKey,
      feedback: null,
    };
    taps.push(rec);
    await press(a, rec);
  };
  /** Taps that met a dead reader: the worker saw nothing and taps again once it is back. */
  const replay = async (readerId: string): Promise<void> => {
    const list = retry.get(readerId) ?? [];
    retry.set(readerId, []);
    for (const { a, rec } of list) {
      const vr = world.readers.get(readerId);
      if (rec === null) {
        if (vr?.alive) await act(vr, a);
        continue;
      }
      retried++;
      rec.atMs = world.clock.now();
      await press(a, rec);
    }
  };
  const sweepUnanswered = (): void => {
    const now = world.clock.now();
    for (let i = unanswered.length - 1; i >= 0; i--) {
      const u = unanswered[i];
      if (!u) continue;
      if (u.rec.feedback !== null) {
        unanswered.splice(i, 1);
        continue;
      }
      const vr = world.readers.get(u.a.readerId);
      if (vr && !vr.alive) {
        const q = awaiting.get(u.a.readerId) ?? [];
        awaiting.set(
          u.a.readerId,
          q.filter((r) => r !== u.rec),
        );
        retry.get(u.a.readerId)?.push({ a: u.a, rec: u.rec });
        unanswered.splice(i, 1);
      } else if (now > u.deadline) {
        // alive but silent: leave it in the feedback queue (a slow child), stop watching it
        unanswered.splice(i, 1);
      }
    }
  };

  return {
    taps,
    feedbackCounts,
    get retried() {
      return retried;
    },
    perform,
    replay,
    sweep: sweepUnanswered,
  };
}
