import type { PayloadInputOf } from './codec.js';
import type { WebhookBatch } from './webhook.js';

/** One valid example of every payload: used by the tests and shown in protocol/README.md. */
export const EXAMPLES = {
  events: {
    schemaVersion: 1,
    readerId: 'rdr-0042',
    sentAt: { wallMs: 1_795_420_815_200, bootId: 'b-7f3a9c', monoMs: 3_600_350, synced: true },
    events: [
      {
        readerId: 'rdr-0042',
        seq: 17,
        eventId: 'rdr-0042.b-7f3a9c.17',
        card: 'c1_5d41402abc4b2a76b9719d911017c592',
        decision: 'start',
        visitId: 'rdr-0042.v17',
        time: { wallMs: 1_795_420_800_000, bootId: 'b-7f3a9c', monoMs: 3_600_123, synced: true },
      },
      {
        readerId: 'rdr-0042',
        seq: 18,
        eventId: 'rdr-0042.b-7f3a9c.18',
        card: 'c1_0cc175b9c0f1b6a831c399e269772661',
        decision: 'rejected',
        visitId: null,
        rejectReason: 'unknown-card',
        time: { wallMs: 1_795_420_810_000, bootId: 'b-7f3a9c', monoMs: 3_610_123, synced: true },
      },
    ],
  },
  acks: {
    schemaVersion: 1,
    readerId: 'rdr-0042',
    upTo: 18,
    rejected: [],
    gaps: [],
  },
  status: {
    schemaVersion: 1,
    readerId: 'rdr-0042',
    state: 'online',
    firmware: '0.1.0',
    bootId: 'b-7f3a9c',
    at: { wallMs: 1_795_420_820_000, monoMs: 3_620_000 },
    queueDepth: 0,
    oldestUnackedSeq: null,
    oldestUnackedAgeMs: null,
    lastAckedSeq: 18,
    journalCapacity: 100_000,
    clock: { synced: true, source: 'ntp' },
    readerAttached: true,
    freeStorageBytes: 12_000_000_000,
    configVersion: 3,
    configError: null,
    faults: [],
  },
  config: {
    schemaVersion: 1,
    readerId: 'rdr-0042',
    version: 3,
    visit: { repeatWindowMs: 10_000, maxOpenMs: 43_200_000 },
    allowList: ['c1_5d41402abc4b2a76b9719d911017c592'],
    revoked: [],
    feedbackMode: 'normal',
    logLevel: 'info',
  },
  commands: {
    schemaVersion: 1,
    readerId: 'rdr-0042',
    commandId: 'cmd-20261123-0001',
    kind: 'identify',
    issuedAt: 1_795_420_900_000,
    expiresAt: 1_795_421_200_000,
  },
  'command-results': {
    schemaVersion: 1,
    readerId: 'rdr-0042',
    commandId: 'cmd-20261123-0001',
    status: 'ok',
    at: { wallMs: 1_795_420_901_000, monoMs: 3_721_000, bootId: 'b-7f3a9c' },
  },
} as const satisfies { [L in keyof PayloadMap]: PayloadMap[L] };

type PayloadMap = {
  events: PayloadInputOf<'events'>;
  acks: PayloadInputOf<'acks'>;
  status: PayloadInputOf<'status'>;
  config: PayloadInputOf<'config'>;
  commands: PayloadInputOf<'commands'>;
  'command-results': PayloadInputOf<'command-results'>;
};

export const WEBHOOK_EXAMPLE: WebhookBatch = {
  schemaVersion: 1,
  batchId: 'b1_3f786850e387550fdab836ed7e6dc881de23001b',
  sentAt: '2026-11-23T08:20:01.000Z',
  events: [
    {
      type: 'visit.started',
      idempotencyKey: 'vt1:rdr-0042:17:started',
      visitId: 'rdr-0042.v17',
      readerId: 'rdr-0042',
      clientRef: 'client-1207',
      staffRef: 'staff-88',
      cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
      groupId: null,
      anomalies: [],
      timeQuality: 'synced',
      startedAt: '2026-11-23T08:00:00.000Z',
      startSeq: 17,
    },
    {
      type: 'visit.ended',
      idempotencyKey: 'vt1:rdr-0042:21:ended',
      visitId: 'rdr-0042.v17',
      readerId: 'rdr-0042',
      clientRef: 'client-1207',
      staffRef: 'staff-88',
      cardRef: 'c1_5d41402abc4b2a76b9719d911017c592',
      groupId: null,
      anomalies: [],
      timeQuality: 'corrected',
      startedAt: '2026-11-23T08:00:00.000Z',
      endedAt: '2026-11-23T08:34:10.000Z',
      durationMs: 2_050_000,
      endReason: 'tap',
      endSeq: 21,
    },
    {
      type: 'visit.anomaly',
      idempotencyKey: 'vt1:rdr-0042:18:anomaly:unknown-card',
      anomaly: 'unknown-card',
      readerId: 'rdr-0042',
      clientRef: 'client-1207',
      staffRef: null,
      cardRef: 'c1_0cc175b9c0f1b6a831c399e269772661',
      visitId: null,
      at: '2026-11-23T08:00:10.000Z',
      seq: 18,
      detail: 'card is not in the card registry',
    },
  ],
};
