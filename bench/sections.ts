/** The benchmark sections, in run order. Each yields one or more rows; `skeleton` names them for n/a. */
import { componentPresent, type RowContext } from './lib/ctx.js';
import type { Profile, Row } from './lib/types.js';
import { ingestRows, measureIngest } from './rows/ingest.js';
import { deviceLatencyRows, deviceRssRows } from './rows/device.js';
import { secureCardLatencyRows } from './rows/secure-card.js';
import { backendLatencyRows } from './rows/latency.js';
import { reportRows, REPORT_SIZES } from './rows/reports.js';
import { CARE_REIMPORT_FIGURE, careImportFigure, careRows } from './rows/care.js';
import { simDayRows } from './rows/simday.js';
import { fleetRows } from './rows/storm.js';
import { soakRows } from './rows/soak.js';
import { storeRows } from './rows/store.js';
import { scaleOutRows } from './rows/scale-out.js';
import { WEB_TARGET, webFigure, webRows } from './rows/web.js';

type Skeleton = Pick<Row, 'id' | 'figure' | 'generator' | 'unit' | 'target'>;

export interface Section {
  id: string;
  requires: string[];
  present(rel: string): boolean;
  skeleton(p: Profile): Skeleton[];
  run(ctx: RowContext): Promise<Row[]>;
  /** The section's wall limit when the profile's `rowTimeoutMs` is too short for it (e.g. starting Chromium). */
  timeoutMs?: (p: Profile) => number;
}

export const SECTIONS: Section[] = [
  {
    id: 'ingest',
    requires: [],
    present: componentPresent,
    skeleton: () => [
      {
        id: 'ingest-vs-mosquitto',
        figure: 'gateway durable ingest (batched taps/message) vs Mosquitto QoS 1 relay (1 tap/message)',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '≥ 1.0×',
      },
      {
        id: 'ingest-vs-glue',
        figure: 'gateway durable ingest (batched taps/message) vs Mosquitto + SQLite glue (1 tap/message)',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '≥ 3.0×',
      },
      {
        id: 'ingest-vs-relay-same-payload',
        figure: 'context: gateway vs Mosquitto relaying the same batched payloads',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '— (context)',
      },
      {
        id: 'ingest-one-tap-vs-glue',
        figure: 'context: gateway (1 tap/message) vs Mosquitto + SQLite glue (1 tap/message)',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '— (context)',
      },
    ],
    run: async (ctx) => ingestRows(await measureIngest(ctx), ctx),
  },
  {
    id: 'store',
    requires: ['gateway/src/store/postgres/ingest-store.ts'],
    present: componentPresent,
    skeleton: () => [
      {
        id: 'ingest-store-pg-vs-sqlite',
        figure: 'ingest store group commit: PostgreSQL vs SQLite (one writer each, durable)',
        generator: 'store port (in-process)',
        unit: 'taps/s',
        target: '— (context)',
      },
      {
        id: 'ingest-store-pg-3-vs-1',
        figure: 'ingest store on PostgreSQL: 3 concurrent writers (3 pools, own readers) vs 1',
        generator: 'store port (in-process)',
        unit: 'taps/s',
        target: '— (context)',
      },
    ],
    run: storeRows,
  },
  {
    id: 'scale-out',
    requires: ['gateway/pg-instance.ts'],
    present: componentPresent,
    skeleton: () => [
      {
        id: 'gateway-pg-3-vs-1',
        figure: 'gateway processes on PostgreSQL behind Mosquitto (shared subscription): 3 instances vs 1',
        generator: 'lightweight MQTT clients',
        unit: 'taps/s',
        target: '— (context)',
      },
    ],
    run: scaleOutRows,
  },
  {
    id: 'device-latency',
    requires: ['device/index.ts'],
    present: componentPresent,
    skeleton: () => [
      {
        id: 'device-tap-latency',
        figure: 'device tap → durable journal → feedback latency',
        generator: 'full device (createDevice)',
        unit: 'ms',
        target: 'p99 ≤ 15 ms',
      },
    ],
    run: deviceLatencyRows,
  },
  {
    id: 'secure-card-latency',
    requires: ['device/src/drivers/secure-read.ts'],
    present: componentPresent,
    skeleton: () => [
      {
        id: 'device-secure-tap-latency',
        figure: 'device tap → feedback with a secure card (NTAG 424 DNA SUN), beyond the card read',
        generator: 'full device (createDevice)',
        unit: 'ms',
        target: 'p99 ≤ 15 ms beyond read',
      },
      {
        id: 'device-desfire-tap-latency',
        figure: 'device tap → feedback with a DESFire EV2 card (AES authentication), beyond the card read',
        generator: 'full device (createDevice)',
        unit: 'ms',
        target: 'p99 ≤ 15 ms beyond read',
      },
    ],
    run: secureCardLatencyRows,
  },
  {
    id: 'device-rss',
    requires: ['device/index.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'device-rss-idle',
        figure: 'device RSS idle',
        generator: 'full device (CLI as the unit runs it)',
        unit: 'MB',
        target: '≤ 60 MB',
      },
      {
        id: 'device-rss-journalled',
        figure: `device RSS after ${p.device.rssTaps} journalled taps`,
        generator: 'full device (CLI as the unit runs it)',
        unit: 'MB',
        target: '≤ 60 MB',
      },
    ],
    run: deviceRssRows,
  },
  {
    id: 'sim-day',
    requires: ['simulator/run.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'sim-day',
        figure: `simulated 8-hour day, ${p.simDay.readers} readers, ${p.simDay.staff} staff`,
        generator: 'simulator',
        unit: 's',
        target: '≤ 60 s wall',
      },
    ],
    run: simDayRows,
  },
  {
    id: 'care',
    requires: ['gateway/src/care/service.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'care-plan-import',
        figure: careImportFigure(p.name),
        generator: 'care plan service (worker process)',
        unit: 's',
        target: '≤ 30 s (550 days)',
      },
      {
        id: 'care-plan-reimport',
        figure: CARE_REIMPORT_FIGURE,
        generator: 'care plan service (worker process)',
        unit: 's',
        target: '≤ 1 s',
      },
    ],
    run: careRows,
  },
  {
    id: 'reports',
    requires: ['gateway/src/reports/run.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'report-executed-vs-planned',
        figure: `executed vs planned, ${REPORT_SIZES[p.name].clients} clients × ${REPORT_SIZES[p.name].days} days, per area and month`,
        generator: 'report engine (worker process)',
        unit: 's',
        target: '≤ 2 s',
      },
      {
        id: 'report-continuity',
        figure: `continuity (14 days), ${REPORT_SIZES[p.name].contClients} clients`,
        generator: 'report engine (worker process)',
        unit: 's',
        target: '≤ 2 s',
      },
    ],
    // Both rows in one worker: the databases are generated, the cells built, each report run 3 times
    // from the cells and 3 times on the fly (60 s a run for 18 months at load 10).
    timeoutMs: (p) => (p.name === 'full' ? 3_600_000 : p.name === 'quick' ? 900_000 : p.rowTimeoutMs),
    run: reportRows,
  },
  {
    id: 'web',
    requires: ['web/build.ts', 'gateway/src/dayview/routes.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'web-readers-page',
        figure: webFigure("technician's readers page", p.name),
        generator: 'web app in Chromium (worker process)',
        unit: 'ms',
        target: WEB_TARGET,
      },
      {
        id: 'web-day-view',
        figure: webFigure("coordinator's live day view", p.name),
        generator: 'web app in Chromium (worker process)',
        unit: 'ms',
        target: WEB_TARGET,
      },
    ],
    run: webRows,
    timeoutMs: (p) => Math.max(p.rowTimeoutMs, 300_000),
  },
  {
    id: 'backend-latency',
    requires: ['gateway/index.ts', 'simulator/fake-backend.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'tap-to-backend-latency',
        figure: `tap → planning backend latency, ${p.backendLatency.readers} readers at ${p.backendLatency.tapsPerSecond} taps/s`,
        generator: 'lightweight MQTT clients',
        unit: 'ms',
        target: 'p99 ≤ 250 ms',
      },
    ],
    run: backendLatencyRows,
  },
  {
    id: 'fleet',
    requires: ['gateway/index.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'gateway-rss',
        figure: `gateway RSS with ${p.rss.readers} connected readers`,
        generator: 'lightweight MQTT clients',
        unit: 'MB',
        target: '≤ 1024 MB',
      },
      {
        id: 'reconnect-storm',
        figure: `reconnect storm: ${p.storm.readers} readers × ${p.storm.unackedPerReader} unacked taps, gateway restart → drained`,
        generator: 'lightweight MQTT clients',
        unit: 's',
        target: '≤ 30 s, 0 lost',
      },
    ],
    run: fleetRows,
  },
  {
    id: 'soak',
    requires: ['gateway/index.ts', 'device/index.ts', 'simulator/fake-backend.ts'],
    present: componentPresent,
    skeleton: (p) => [
      {
        id: 'gateway-soak',
        figure: `gateway memory growth under ${p.soak.readers} readers at ${p.soak.tapsPerSecond} taps/s for ${Math.round(p.soak.durationMs / 60_000)} min (after warm-up)`,
        generator: 'lightweight MQTT clients',
        unit: 'MB/100k taps',
        target: '< 1 MB per 100,000 taps',
      },
      {
        id: 'device-soak',
        figure: `device memory growth over ${p.soak.deviceTaps} journalled and acknowledged taps (after warm-up)`,
        generator: 'full device (createDevice)',
        unit: 'MB/100k taps',
        target: '< 1 MB per 100,000 taps',
      },
    ],
    run: soakRows,
    // the paced hour (full) or ten minutes (quick), provisioning, and the device's taps
    timeoutMs: (p) => Math.max(p.rowTimeoutMs, p.soak.durationMs + 1_800_000),
  },
];
