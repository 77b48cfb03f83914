/**
 * Clock-sync port: whether the OS clock is synchronised, and asking the OS to resynchronise it
 * (gateway command `resync-clock`). On a Pi: systemd-timesyncd via timedatectl/systemctl
 * (drivers/systemd-clock-sync.ts); tests and the simulator inject a fake.
 */
export type ResyncOutcome =
  | { ok: true; synced: true; detail: string }
  | {
      ok: false;
      /** Whether the clock is (still) synchronised although the resync failed. */
      synced: boolean;
      /** Why, with what a technician can do about it (≤ 200 chars). */
      reason: string;
    };

export interface ClockSync {
  /** Cheap, never blocks a tap: the last known sync state. */
  synced(): boolean;
  /** Asks the OS to resync and waits (bounded) for the outcome. Never rejects. */
  resync(): Promise<ResyncOutcome>;
}
