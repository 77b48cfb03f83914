import { readFileSync } from 'node:fs';
import { systemClock } from '../../../protocol/index.js';
import type { Clock, EventTime } from '../../../protocol/index.js';

/** Lowest wall time the protocol accepts (2000-01-01): a Pi without RTC may boot at 1970. */
export const MIN_WALL_MS = 946_684_800_000;

/**
 * The device's real clock: wall time from Date.now(), monotonic time from CLOCK_MONOTONIC
 * (process.hrtime, which on Linux counts from system boot), so monotonic time is continuous across
 * process restarts within one boot and matches the kernel boot id.
 */
export const deviceClock: Clock = {
  ...systemClock,
  monotonic: () => Number(process.hrtime.bigint() / 1_000_000n),
};

/** The kernel's boot id (Linux), else a random one for this process. */
export function readBootId(random: () => number): string {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    if (/^[0-9a-f-]{8,64}$/.test(id)) return id;
  } catch {
    // not Linux
  }
  let s = 'b';
  for (let i = 0; i < 20; i++) s += Math.floor(random() * 36).toString(36);
  return s;
}

/** The time stamp for an event: clamps a pre-2000 wall clock (never synced then). */
export function eventTime(clock: Clock, bootId: string, synced: boolean): EventTime {
  const wall = Math.floor(clock.now());
  const ok = wall >= MIN_WALL_MS;
  return {
    wallMs: ok ? wall : MIN_WALL_MS,
    bootId,
    monoMs: Math.max(0, Math.floor(clock.monotonic())),
    synced: ok && synced,
  };
}
