/**
 * Two home-care areas on a real gateway (real SQLite file, real MQTT readers, real HTTP): the shared
 * fixture of the scope, corrections and day-view tests.
 *
 *   area-a: client cl-a (provider p-1, reader rd-a), client cl-a2 (provider p-2, reader rd-a2),
 *           client cl-a3 (provider p-1, no reader), staff st-a
 *   area-b: client cl-b (provider p-1, reader rd-b), client cl-b2 (provider p-1, no reader), staff st-b
 *
 * Taps (all "now" minus about 110 minutes, synced clocks): st-a's card starts a visit at rd-a and at
 * rd-a2, st-b's card at rd-b; an unknown card at rd-a and another at rd-b. The plan of today has one
 * visit two hours ago for each client with a reader (all matched) and one twenty minutes ago for cl-a3
 * (pv-a-late) and cl-b2 (pv-b-late), where no one came: late alerts. Importing this module moves the
 * test process's clock to daytime when the suite runs at night (test/support/daytime.ts).
 */
import { createGateway, type Gateway } from '../../gateway/index.js';
import { encode, topics, type EventBatch, type TapEvent } from '../../protocol/index.js';
import {
  ADMIN_TOKEN,
  card,
  connectReader,
  PASSWORD,
  silent,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';
import { pinDaytime } from '../support/daytime.js';

pinDaytime();

export const ZONE = 'Europe/Stockholm';
export const BACKEND_SECRET = 'web-api-backend-secret-0123456789';
export const CARD_A = card(1);
export const CARD_B = card(2);
export const UNKNOWN_A = card(5);
export const UNKNOWN_B = card(6);

/** Everything that belongs to area B or to provider p-2: none of it may reach a coordinator of (area-a, p-1). */
export const FOREIGN = [
  'cl-b',
  'rd-b',
  'st-b',
  'area-b',
  'cl-a2',
  'rd-a2',
  'pv-b',
  'pv-a2',
  UNKNOWN_B,
  'p-2',
];

export function localParts(ms: number): { date: string; time: string } {
  const f = new Intl.DateTimeFormat('sv-SE', {
    timeZone: ZONE,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(new Date(ms));
  const [date, time] = f.split(' ') as [string, string];
  return { date, time };
}

export interface Fixture {
  gw: Gateway;
  dir: string;
  today: string;
  visitA: string;
  visitB: string;
  visitA2: string;
  call(
    method: string,
    path: string,
    token: string | null,
    body?: unknown,
  ): Promise<{ status: number; body: unknown; text: string }>;
  token(name: string, role: string, areas: string[], provider?: string | null): Promise<string>;
  stop(): Promise<void>;
}

export async function startFixture(opts: { backendUrl?: string } = {}): Promise<Fixture> {
  const tmp = tempDir('vt-web-api-');
  const gw = createGateway({
    config: testConfig(
      tmp.dir,
      opts.backendUrl ? { backend: { url: opts.backendUrl, secret: BACKEND_SECRET } } : {},
    ),
    logger: silent,
    care: {
      timeZone: ZONE,
      alerts: { lateAfterMinutes: 15, missedAfterMinutes: 60, liveHorizonMinutes: 360 },
      tickMs: 3_600_000,
    },
  });
  trackDataDir(gw, tmp.dir);
  await gw.start();
  const now = Date.now();
  const startAt = now - 110 * 60_000;
  const early = localParts(now - 120 * 60_000);
  const late = localParts(now - 20 * 60_000);
  const today = localParts(now).date;
  const from = early.date < today ? early.date : today;

  await gw.care.plan.upsertRegistry({
    providers: [
      { providerId: 'p-1', name: 'Kommunen', kind: 'municipal' },
      { providerId: 'p-2', name: 'Privat AB', kind: 'lov' },
    ],
    areas: [
      { areaId: 'area-a', name: 'Norr', lateAfterMinutes: null, missedAfterMinutes: null },
      { areaId: 'area-b', name: 'Söder', lateAfterMinutes: null, missedAfterMinutes: null },
    ],
    clients: [
      client('cl-a', 'area-a', 'p-1'),
      client('cl-a2', 'area-a', 'p-2'),
      client('cl-a3', 'area-a', 'p-1'),
      client('cl-b', 'area-b', 'p-1'),
      client('cl-b2', 'area-b', 'p-1'),
    ],
    staff: [
      {
        staffRef: 'st-a',
        teamId: null,
        areaId: 'area-a',
        category: 'care',
        activeFrom: '2020-01-01',
        activeTo: null,
      },
      {
        staffRef: 'st-b',
        teamId: null,
        areaId: 'area-b',
        category: 'care',
        activeFrom: '2020-01-01',
        activeTo: null,
      },
    ],
  });
  for (const [areaId, rows] of [
    [
      'area-a',
      [
        {
          plannedVisitId: 'pv-a',
          clientRef: 'cl-a',
          date: early.date,
          start: early.time,
          plannedMinutes: 30,
        },
        {
          plannedVisitId: 'pv-a-late',
          clientRef: 'cl-a3',
          date: late.date,
          start: late.time,
          plannedMinutes: 30,
        },
        {
          plannedVisitId: 'pv-a2',
          clientRef: 'cl-a2',
          date: early.date,
          start: early.time,
          plannedMinutes: 30,
        },
      ],
    ],
    [
      'area-b',
      [
        {
          plannedVisitId: 'pv-b',
          clientRef: 'cl-b',
          date: early.date,
          start: early.time,
          plannedMinutes: 30,
        },
        {
          plannedVisitId: 'pv-b-late',
          clientRef: 'cl-b2',
          date: late.date,
          start: late.time,
          plannedMinutes: 30,
        },
      ],
    ],
  ] as const) {
    const r = await gw.care.plan.importPlan({
      areaId,
      fromDate: from,
      toDate: today,
      dryRun: false,
      actor: 'test',
      source: 'api',
      rows: [...rows],
    });
    if (!r.ok) throw new Error(`plan import failed: ${JSON.stringify(r)}`);
  }

  for (const [readerId, clientRef] of [
    ['rd-a', 'cl-a'],
    ['rd-a2', 'cl-a2'],
    ['rd-b', 'cl-b'],
  ] as const) {
    await gw.registry.addReader({ readerId, clientRef, password: PASSWORD });
  }
  gw.registry.addCard({ cardRef: CARD_A, staffRef: 'st-a' });
  gw.registry.addCard({ cardRef: CARD_B, staffRef: 'st-b' });

  const tap = (readerId: string, seq: number, cardRef: string): TapEvent => ({
    readerId,
    seq,
    eventId: `${readerId}-e${seq}`,
    card: cardRef,
    decision: 'start',
    visitId: `${readerId}-v${seq}`,
    time: { wallMs: startAt + seq * 1000, bootId: 'boot-1', monoMs: seq * 1000, synced: true },
  });
  const taps: Record<string, TapEvent[]> = {
    'rd-a': [tap('rd-a', 1, CARD_A), tap('rd-a', 2, UNKNOWN_A)],
    'rd-a2': [tap('rd-a2', 1, CARD_A)],
    'rd-b': [tap('rd-b', 1, CARD_B), tap('rd-b', 2, UNKNOWN_B)],
  };
  for (const [readerId, events] of Object.entries(taps)) {
    const client = await connectReader(gw.mqttPort ?? 0, readerId);
    const batch: EventBatch = {
      schemaVersion: 1,
      readerId,
      sentAt: { wallMs: startAt + 10_000, bootId: 'boot-1', monoMs: 10_000, synced: true },
      events,
    };
    await client.publishAsync(topics.events(readerId), encode('events', batch), { qos: 1 });
    await client.endAsync();
  }

  const call: Fixture['call'] = async (method, path, token, body) => {
    const res = await fetch(`${gw.adminUrl}${path}`, {
      method,
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text) as unknown;
    } catch {
      parsed = null;
    }
    return { status: res.status, body: parsed, text };
  };
  // every tap became a visit or an unknown-card anomaly
  await waitUntil(async () => {
    const v = (await call('GET', '/api/visits?state=open', ADMIN_TOKEN)).body as { visits: unknown[] };
    const a = (await call('GET', '/api/anomalies?kind=unknown-card', ADMIN_TOKEN)).body as {
      anomalies: unknown[];
    };
    return v.visits.length >= 3 && a.anomalies.length >= 2;
  }, 15_000);
  await gw.care.plan.tick();

  return {
    gw,
    dir: tmp.dir,
    today,
    visitA: 'rd-a-v1',
    visitA2: 'rd-a2-v1',
    visitB: 'rd-b-v1',
    call,
    token: async (name, role, areas, provider = null) =>
      (
        await gw.access.service.createToken('test', {
          name,
          role: role as 'coordinator',
          areas,
          provider,
        })
      ).token,
    stop: async () => {
      await gw.stop();
      tmp.cleanup();
    },
  };
}

function client(clientRef: string, areaId: string, providerId: string) {
  return {
    clientRef,
    areaId,
    teamId: null,
    providerId,
    birthYear: 1940,
    kkikEligible: null,
    decisionTypes: ['personal-care'],
    careContactStaffRef: null,
    palliative: false,
    activeFrom: '2020-01-01',
    activeTo: null,
    absences: [],
  };
}
