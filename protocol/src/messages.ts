import { z } from 'zod';
import { BootId, CardRef, EpochMs, ReaderId, SafeId, SeqNo, Text } from './ids.js';
import { LIMITS, SCHEMA_VERSION } from './limits.js';
import { CardScheme, ReaderCardRef, SealedCard } from './card-seal.js';

const Version = z.literal(SCHEMA_VERSION).describe('Schema version; unknown versions are rejected.');

/** Device log levels (pushed config, reported in status). */
export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug']);
export type LogLevel = z.infer<typeof LogLevel>;

/**
 * What the reader's feedback does (device/README.md "Feedback modes"): normal: light and sound;
 * quiet: light only, except "not accepted" and faults, which still sound; silent: light only.
 */
export const FeedbackMode = z.enum(['normal', 'quiet', 'silent']);
export type FeedbackMode = z.infer<typeof FeedbackMode>;

// ───────────────────────────── device → gateway: events ─────────────────────────────

/** What the device decided, and showed the worker, for a tap. */
export const TapDecision = z
  .enum(['start', 'stop', 'repeat', 'rejected', 'auto-close'])
  .describe(
    'start: a visit opened; stop: it closed; repeat: same card again within the repeat window, no change; ' +
      'rejected: card not on the allow-list (still journalled); auto-close: the device closed a visit open ' +
      'longer than the maximum (missing stop).',
  );
export type TapDecision = z.infer<typeof TapDecision>;

export const RejectReason = z
  .enum(['unknown-card', 'revoked-card', 'uid-only-card', 'card-auth-failed'])
  .describe(
    'uid-only-card (added within version 1): the card gave only its UID where the pushed config refuses UID-only cards. ' +
      "card-auth-failed (added within version 1): a DESFire card with the application failed the reader's AES authentication (wrong key or a copy).",
  );

/** When it happened, as the device knows it. A Pi has no RTC: wall time may be wrong until synced. */
export const EventTime = z
  .object({
    wallMs: EpochMs.describe('Device wall clock at the tap (ms since epoch); trust only when synced.'),
    bootId: BootId,
    monoMs: z.number().int().min(0).describe('Monotonic ms since this boot.'),
    synced: z.boolean().describe('Whether the wall clock was synchronised (NTP) at the tap.'),
  })
  .strict();
export type EventTime = z.infer<typeof EventTime>;

const Hex = (bytes: number, what: string) =>
  z
    .string()
    .regex(
      new RegExp(`^[0-9A-F]{${bytes * 2}}$`),
      `must be ${bytes * 2} uppercase hex chars (${bytes} bytes)`,
    )
    .describe(what);

/**
 * A MIFARE DESFire EV2/EV3 authentication (issue 18; added within version 1): the transcript of the
 * reader's AuthenticateEV2First with the card's application read key and the card's GetCardUID answer,
 * uppercase hex. The gateway re-derives the card's key and checks every step (docs/secure-cards.md).
 */
export const DesfireProof = z
  .object({
    kind: z.literal('desfire-ev2'),
    keyNo: z.number().int().min(0).max(13).describe('Application key number the reader authenticated with.'),
    rndA: Hex(16, "The reader's random challenge RndA."),
    encRndB: Hex(16, "The card's first answer E(K, RndB)."),
    auth: Hex(32, "The card's final answer E(K, TI || RndA' || capabilities)."),
    cardUid: Hex(24, 'GetCardUID answer: the UID encrypted under the session key, then the response MAC.'),
    env: Hex(16, 'The UID sealed for the gateway under the fleet-wide envelope key (CBC, IV = RndA).'),
  })
  .strict()
  .describe('A DESFire EV2/EV3 AES authentication transcript.');

/**
 * What the card proved beyond its UID (issue 18; added within version 1). An NTAG 424 DNA's SUN
 * message: PICCENCData (encrypted UID + tap counter) and the truncated SDMMAC, as the card mirrored
 * them into its NDEF file, uppercase hex. Only the gateway holds the keys to check it.
 */
export const SunProof = z
  .object({
    kind: z.literal('ntag424-sun'),
    picc: z
      .string()
      .regex(/^[0-9A-F]{32}$/, 'must be 32 uppercase hex chars (16 bytes)')
      .describe('PICCENCData: UID and SDMReadCtr, AES-encrypted with the SDM meta read key.'),
    mac: z
      .string()
      .regex(/^[0-9A-F]{16}$/, 'must be 16 uppercase hex chars (8 bytes)')
      .describe("SDMMAC: the truncated CMAC under the session key of the card's SDM file read key."),
  })
  .strict()
  .describe("A secure card's fresh proof of presence (NTAG 424 DNA SUN message).");
export const CardProof = z
  .discriminatedUnion('kind', [SunProof, DesfireProof])
  .describe('What a secure card proved at a tap: an NTAG 424 DNA SUN message or a DESFire authentication.');
export type CardProof = z.infer<typeof CardProof>;

/**
 * The card of a tap: the fleet pseudonym (a reader holding the fleet key), or the reader's own reference with
 * the UID sealed to the gateway beside it (sealed scheme, issue 16; added within version 1).
 */
export const TapCardRef = z
  .union([CardRef, ReaderCardRef])
  .describe(
    "c1_: fleet pseudonym (fleet-key readers); r1_: this reader's own reference (sealed-v1 readers).",
  );

export const TapEvent = z
  .object({
    readerId: ReaderId,
    seq: SeqNo,
    eventId: SafeId.describe('Unique event id (stable across resends).'),
    card: TapCardRef,
    sealedCard: SealedCard.optional().describe(
      'With an r1_ card only: the UID sealed to the gateway, which replaces card by the fleet pseudonym and drops this field before storing the event. Added within version 1.',
    ),
    decision: TapDecision,
    visitId: SafeId.nullable().describe(
      'Visit the device assigned (start/stop/repeat/auto-close); null for rejected taps.',
    ),
    rejectReason: RejectReason.optional().describe('Only with decision "rejected".'),
    time: EventTime,
    selftest: z.boolean().optional().describe('A technician self-test tap; never forwarded as a visit.'),
    cardProof: CardProof.optional().describe(
      'What a secure card proved at this tap (absent: the card gave only its UID). Added within version 1.',
    ),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.card.startsWith('r1_') !== (e.sealedCard !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['sealedCard'],
        message: 'is required with an r1_ card and only then',
      });
    }
    if (e.decision === 'rejected') {
      if (e.visitId !== null) ctx.addIssue({ code: 'custom', path: ['visitId'], message: 'must be null' });
      if (!e.rejectReason) ctx.addIssue({ code: 'custom', path: ['rejectReason'], message: 'is required' });
    } else {
      if (e.visitId === null) ctx.addIssue({ code: 'custom', path: ['visitId'], message: 'is required' });
      if (e.rejectReason)
        ctx.addIssue({ code: 'custom', path: ['rejectReason'], message: 'only with "rejected"' });
    }
  });
export type TapEvent = z.infer<typeof TapEvent>;

/**
 * A journal epoch (added within version 1): a random id the device chooses when it creates a journal. Sequence
 * numbers are unique within (readerId, epoch) only: a wiped or replaced journal under the same reader id starts a
 * new epoch at seq 1, and its seqs are never duplicates of the old epoch's. A journal created before epochs existed
 * sends none (the reader's legacy epoch).
 */
export const JournalEpoch = SafeId.describe(
  'Journal epoch: random id chosen when the journal was created; seqs are unique within (readerId, epoch).',
);

/** Why a device cannot deliver a sequence it once numbered. */
export const TombstoneReason = z
  .enum(['quarantined', 'acked-deleted'])
  .describe(
    'quarantined: the journal row was unreadable at start-up or when read, and was set aside. ' +
      'acked-deleted (added within version 1): the gateway acknowledged these seqs earlier and the device deleted them, ' +
      'but the gateway no longer holds them (restored from a backup): they are lost, declared with their extent.',
  );
export type TombstoneReason = z.infer<typeof TombstoneReason>;

/**
 * A tombstone (added within version 1): the device declares the seqs from..to (inclusive) of its epoch that it
 * will never deliver. The gateway records them as held (they count for the ack's upTo) and pairing continues
 * past them; it reports each as a gap with its extent and reason, never silently.
 */
export const Tombstone = z
  .object({
    from: SeqNo,
    to: SeqNo,
    reason: TombstoneReason,
    detail: Text.optional().describe('What the device saw (no card ids).'),
  })
  .strict()
  .refine((t) => t.to >= t.from, { message: 'to must be ≥ from', path: ['to'] });
export type Tombstone = z.infer<typeof Tombstone>;

export const EventBatch = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    sentAt: EventTime.describe(
      "Device clock when the batch was sent: with the gateway's receive time it anchors the correction of unsynced event times of this boot.",
    ),
    epoch: JournalEpoch.optional().describe(
      'Journal epoch the seqs of this batch belong to (absent: the legacy epoch). Added within version 1.',
    ),
    events: z
      .array(TapEvent)
      .max(LIMITS.maxBatchEvents)
      .describe('0–200 tap events in sequence order (0 only when the batch carries tombstones).'),
    tombstones: z
      .array(Tombstone)
      .max(LIMITS.maxBatchTombstones)
      .optional()
      .describe('Seqs of this epoch the device will never deliver, in order. Added within version 1.'),
  })
  .strict()
  .superRefine((b, ctx) => {
    const tombs = b.tombstones ?? [];
    if (b.events.length === 0 && tombs.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['events'],
        message: 'must hold at least one event or tombstone',
      });
    }
    tombs.forEach((t, i) => {
      const prev = tombs[i - 1];
      if (prev && t.from <= prev.to) {
        ctx.addIssue({
          code: 'custom',
          path: ['tombstones', i, 'from'],
          message: 'ranges must be ordered and disjoint',
        });
      }
      if (b.events.some((e) => e.seq >= t.from && e.seq <= t.to)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tombstones', i],
          message: 'covers the seq of an event in this batch',
        });
      }
    });
    b.events.forEach((e, i) => {
      if (e.readerId !== b.readerId) {
        ctx.addIssue({
          code: 'custom',
          path: ['events', i, 'readerId'],
          message: 'differs from batch readerId',
        });
      }
      const prev = b.events[i - 1];
      if (prev && e.seq <= prev.seq) {
        ctx.addIssue({ code: 'custom', path: ['events', i, 'seq'], message: 'must be strictly increasing' });
      }
    });
  });
export type EventBatch = z.infer<typeof EventBatch>;

// ───────────────────────────── gateway → device: acks ─────────────────────────────

export const AckRejectReason = z.enum(['invalid-event', 'reader-mismatch', 'duplicate-conflict']);

export const Ack = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    upTo: z
      .number()
      .int()
      .min(0)
      .describe(
        'Highest contiguous sequence the gateway holds durably (0: none). The device may delete ≤ upTo.',
      ),
    rejected: z
      .array(z.object({ seq: SeqNo, reason: AckRejectReason, detail: Text.optional() }).strict())
      .max(LIMITS.maxAckRejects)
      .describe('Sequences the gateway durably recorded as rejected (they count as held for upTo).'),
    gaps: z
      .array(z.object({ from: SeqNo, to: SeqNo }).strict())
      .max(50)
      .optional()
      .describe('Missing ranges above upTo the gateway still waits for (the device should resend them).'),
    epoch: JournalEpoch.optional().describe(
      'The journal epoch upTo, rejected and gaps refer to (the epoch of the batch answered). A device ignores an ack of another epoch. Added within version 1.',
    ),
  })
  .strict();
export type Ack = z.infer<typeof Ack>;

// ───────────────────────────── device status (retained, last will) ─────────────────────────────

export const ClockResync = z
  .object({
    atWallMs: EpochMs.describe('Device wall clock when the resync finished.'),
    ok: z.boolean().describe('Whether the OS resynchronised the clock.'),
    detail: Text.describe('What happened, or why it failed and what to do.'),
  })
  .strict()
  .describe('Outcome of the last resync-clock command in this run of the device.');

export const ClockState = z
  .object({
    synced: z.boolean(),
    source: z.enum(['ntp', 'gateway', 'none']).describe('What the device last synchronised from.'),
    lastResync: ClockResync.optional(),
  })
  .strict();
export type ClockState = z.infer<typeof ClockState>;

export const StatusOnline = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    state: z.literal('online'),
    firmware: z.string().min(1).max(40),
    bootId: BootId,
    at: z.object({ wallMs: EpochMs, monoMs: z.number().int().min(0) }).strict(),
    queueDepth: z.number().int().min(0).describe('Unacknowledged events in the journal.'),
    oldestUnackedSeq: SeqNo.nullable(),
    oldestUnackedAgeMs: z.number().int().min(0).nullable(),
    lastAckedSeq: z.number().int().min(0),
    journalCapacity: z.number().int().min(1),
    clock: ClockState,
    readerAttached: z.boolean(),
    freeStorageBytes: z.number().int().min(0),
    configVersion: z.number().int().min(0).describe('Config version in force (0: built-in defaults).'),
    configError: Text.nullable().describe('Why the last pushed config was refused, if it was.'),
    faults: z.array(z.enum(['reader-detached', 'storage-low', 'journal-full', 'clock-unsynced'])).max(8),
    logLevel: z
      .enum([...LogLevel.options, 'trace', 'silent'])
      .optional()
      .describe('Log level in force (pushed config, else the config file).'),
    feedbackMode: FeedbackMode.optional().describe('Feedback mode in force (pushed config, else normal).'),
    cardScheme: CardScheme.optional().describe(
      'How this reader references cards (absent: fleet-key); the gateway pushes its card lists in that form. Added within version 1.',
    ),
  })
  .strict();

export const StatusOffline = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    state: z.literal('offline'),
  })
  .strict()
  .describe('Last will, published by the broker when the device vanishes, or by the device on clean exit.');

export const Status = z.discriminatedUnion('state', [StatusOnline, StatusOffline]);
export type Status = z.infer<typeof Status>;
export type StatusOnline = z.infer<typeof StatusOnline>;

// ───────────────────────────── gateway → device: config (retained) ─────────────────────────────

/** Visit windows (docs/design.md, "Visit semantics"): the device's built-in defaults and the pushed config share them. */
export const VisitWindows = z
  .object({
    repeatWindowMs: z.number().int().min(0).max(600_000).default(10_000),
    maxOpenMs: z
      .number()
      .int()
      .min(60_000)
      .max(7 * 24 * 3_600_000)
      .default(12 * 3_600_000),
  })
  .strict();

export const DeviceConfig = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    version: z
      .number()
      .int()
      .min(1)
      .describe('Monotonic config version; the device reports what it applied.'),
    visit: VisitWindows,
    allowList: z
      .array(TapCardRef)
      .max(LIMITS.maxAllowList)
      .nullable()
      .describe(
        "Card references accepted; null accepts every card (the gateway still flags unknown ones). c1_ for fleet-key readers, r1_ (this reader's own references, added within version 1) for sealed-v1 readers.",
      ),
    revoked: z.array(TapCardRef).max(LIMITS.maxAllowList).default([]),
    feedbackMode: FeedbackMode.default('normal'),
    logLevel: LogLevel.default('info'),
    uidOnlyCards: z
      .enum(['accept', 'refuse'])
      .optional()
      .describe(
        'refuse: a card that gives only its UID (no secure-card proof) is not accepted at the reader (added within version 1; absent: accept).',
      ),
  })
  .strict();
export type DeviceConfig = z.infer<typeof DeviceConfig>;

// ───────────────────────────── gateway → device: commands; device → gateway: results ─────────────

export const CommandKind = z.enum(['identify', 'resync-clock', 'restart', 'selftest-echo']);

export const Command = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    commandId: SafeId,
    kind: CommandKind,
    issuedAt: EpochMs,
    expiresAt: EpochMs.optional().describe('Ignore the command after this time.'),
    serverTimeMs: EpochMs.optional().describe('Gateway wall clock, for resync-clock.'),
  })
  .strict();
export type Command = z.infer<typeof Command>;

export const CommandResult = z
  .object({
    schemaVersion: Version,
    readerId: ReaderId,
    commandId: SafeId,
    status: z.enum(['ok', 'failed', 'rejected', 'expired']),
    detail: Text.optional(),
    at: z.object({ wallMs: EpochMs, monoMs: z.number().int().min(0), bootId: BootId }).strict(),
    clock: ClockState.optional().describe('resync-clock: the clock state after the attempt.'),
  })
  .strict();
export type CommandResult = z.infer<typeof CommandResult>;
