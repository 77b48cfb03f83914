/** The shape of one benchmark row, as printed and as written to JSON. */
export type Generator =
  | 'lightweight MQTT clients'
  | 'full device (createDevice)'
  | 'full device (CLI as the unit runs it)'
  | 'simulator'
  | 'store port (in-process)'
  | 'report engine (worker process)'
  | 'care plan service (worker process)'
  | 'web app in Chromium (worker process)'
  | 'none (footprint)'
  | 'n/a';

export interface Row {
  /** Stable machine id, e.g. `ingest-vs-mosquitto`. */
  id: string;
  figure: string;
  generator: Generator;
  /** Measured value (number) or null when not measured. */
  value: number | null;
  /** How to print the value when a bare number says too little (e.g. `p50 3 / p99 9 ms`). */
  display?: string | undefined;
  unit: string;
  /** Baseline measured side by side in the same run (null when the figure has none). */
  baseline: number | null;
  baselineLabel: string | null;
  /** value / baseline when both are present. */
  ratio: number | null;
  /** Human-readable target, e.g. "≥ 3.0×" or "p99 ≤ 15 ms". */
  target: string;
  /** true / false, or null when not measured. */
  met: boolean | null;
  /** Why a row has no value (`n/a (component missing)`, `n/a (timeout)`, …) or extra facts. */
  note: string;
  /** Extra numbers (percentiles, counts, sizes) for the JSON file. */
  details: Record<string, unknown>;
}

export type ProfileName = 'smoke' | 'quick' | 'full';

export interface Profile {
  name: ProfileName;
  /**
   * Ingest comparison: concurrent publishing readers; taps per message sent to the gateway (the device's
   * uplink batch); taps per message of the baselines (1: one MQTT message per card read, what a broker + glue
   * pipeline sends); run length; taps pre-encoded per reader (a cap, so the generator never runs dry).
   */
  ingest: {
    readers: number;
    batchSize: number;
    baselineBatchSize: number;
    durationMs: number;
    maxTapsPerReader: number;
  };
  device: { taps: number; rssTaps: number };
  backendLatency: { readers: number; tapsPerSecond: number; durationMs: number };
  /**
   * `rounds`: storms per admission (old, new), the order alternating per round. At least 2 in the quick and
   * full profiles: on the same fleet the second storm of a pair drained about twice as slowly as the first,
   * whichever admission it used (2026-12-07, quiet machine: 31.7 and 37.6 s first, 75.8 and 72.6 s second), so
   * one round compared the new admission in the slow position only. `scaledRate` 1: the
   * gateway's base connection rate and burst scaled to `readers` (500/s and 1,000 at 10,000), so a smaller
   * fleet on a loaded machine has the full run's admission-bound shape (issue 15).
   */
  storm: {
    readers: number;
    unackedPerReader: number;
    drainTimeoutMs: number;
    rounds: number;
    scaledRate: number;
    /**
     * The readers' MQTT connect timeout during the storms (ms): the device's default `mqtt.connectTimeoutMs`
     * (device/src/config.ts), 10 s. Until 2026-12-07 the row's readers waited 60 s, which a real reader never
     * does: a connection whose CONNECT the gateway's kernel dropped kept such a reader waiting a minute.
     */
    connectTimeoutMs: number;
  };
  rss: { readers: number };
  /**
   * Soak (issue 15): a gateway under the latency row's live shape (`readers` connected, `tapsPerSecond` in
   * one-tap batches) for `durationMs`, memory sampled every `sampleMs`; a full device over `deviceTaps`
   * journalled and acknowledged taps. The slope is fitted over the samples after the first third.
   */
  soak: {
    readers: number;
    tapsPerSecond: number;
    durationMs: number;
    sampleMs: number;
    deviceTaps: number;
    /**
     * The gateway's `store.visitIndexMaxVisits` (absent: its default, 50,000). The index fills at half the tap
     * rate (a visit is two taps); the quick soak lowers it so that it is full within the warm-up third, as the
     * default is within the hour-long soak's (100 visits/s: 500 s of 1,200).
     */
    visitIndexMaxVisits?: number;
  };
  simDay: { readers: number; staff: number };
  /** Hard wall limit per row. */
  rowTimeoutMs: number;
}

export const PROFILES: Record<ProfileName, Profile> = {
  smoke: {
    name: 'smoke',
    ingest: { readers: 4, batchSize: 5, baselineBatchSize: 1, durationMs: 500, maxTapsPerReader: 100 },
    device: { taps: 20, rssTaps: 50 },
    backendLatency: { readers: 10, tapsPerSecond: 20, durationMs: 1000 },
    storm: {
      readers: 10,
      unackedPerReader: 3,
      drainTimeoutMs: 20_000,
      rounds: 1,
      scaledRate: 0,
      connectTimeoutMs: 10_000,
    },
    rss: { readers: 10 },
    soak: { readers: 10, tapsPerSecond: 20, durationMs: 20_000, sampleMs: 2_000, deviceTaps: 300 },
    simDay: { readers: 5, staff: 2 },
    rowTimeoutMs: 60_000,
  },
  quick: {
    name: 'quick',
    ingest: { readers: 50, batchSize: 100, baselineBatchSize: 1, durationMs: 3_000, maxTapsPerReader: 2_000 },
    device: { taps: 300, rssTaps: 10_000 },
    backendLatency: { readers: 200, tapsPerSecond: 200, durationMs: 6_000 },
    storm: {
      readers: 300,
      unackedPerReader: 10,
      drainTimeoutMs: 60_000,
      rounds: 2,
      scaledRate: 0,
      connectTimeoutMs: 10_000,
    },
    rss: { readers: 300 },
    soak: {
      readers: 2_000,
      tapsPerSecond: 200,
      durationMs: 600_000,
      sampleMs: 15_000,
      deviceTaps: 20_000,
      visitIndexMaxVisits: 10_000,
    },
    simDay: { readers: 300, staff: 80 },
    rowTimeoutMs: 150_000,
  },
  full: {
    name: 'full',
    ingest: {
      readers: 200,
      batchSize: 100,
      baselineBatchSize: 1,
      durationMs: 10_000,
      maxTapsPerReader: 4_000,
    },
    device: { taps: 2_000, rssTaps: 10_000 },
    backendLatency: { readers: 5_000, tapsPerSecond: 200, durationMs: 30_000 },
    storm: {
      readers: 10_000,
      unackedPerReader: 10,
      drainTimeoutMs: 60_000,
      rounds: 2,
      scaledRate: 0,
      connectTimeoutMs: 10_000,
    },
    rss: { readers: 10_000 },
    soak: {
      readers: 2_000,
      tapsPerSecond: 200,
      durationMs: 3_600_000,
      sampleMs: 30_000,
      deviceTaps: 100_000,
    },
    simDay: { readers: 300, staff: 80 },
    rowTimeoutMs: 900_000,
  },
};

export function naRow(base: Pick<Row, 'id' | 'figure' | 'generator' | 'unit' | 'target'>, note: string): Row {
  return {
    ...base,
    value: null,
    baseline: null,
    baselineLabel: null,
    ratio: null,
    met: null,
    note,
    details: {},
  };
}
