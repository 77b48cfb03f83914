import { z } from 'zod';
import { DEFAULT_ADMISSION } from './admission.js';
import { DEFAULT_AUTH_THROTTLE, DEFAULT_READER_RATE } from './limits.js';
import { DEFAULT_MAX_SEQ_JUMP } from '../ingest/limits.js';

const Bucket = (d: { burst: number; perMinute: number }, what: string) =>
  z
    .object({
      burst: z
        .number()
        .int()
        .min(1)
        .max(100_000)
        .default(d.burst)
        .describe(`Failed ${what} checks in a burst.`),
      perMinute: z.number().min(0.1).max(100_000).default(d.perMinute).describe('Refill per minute.'),
    })
    .strict()
    .default(d);

/**
 * Abuse limits (issue 16; docs/security.md "Limits"): failed-login throttling, per-reader publish rate and
 * volume, the sequence-jump bound and reject logging. Every field has the default the gateway used before it
 * was configurable.
 */
export const LimitsSettings = z
  .object({
    authThrottle: z
      .object({
        perSource: Bucket(DEFAULT_AUTH_THROTTLE.perSource, 'password checks from one address'),
        perReader: Bucket(DEFAULT_AUTH_THROTTLE.perReader, 'password checks for one reader id'),
      })
      .strict()
      .default(DEFAULT_AUTH_THROTTLE)
      .describe('Failed MQTT logins that may run the slow password hash (embedded broker).'),
    readerRate: z
      .object({
        messagesPerSecond: z.number().min(0.1).default(DEFAULT_READER_RATE.messagesPerSecond),
        messageBurst: z.number().int().min(1).default(DEFAULT_READER_RATE.messageBurst),
        bytesPerSecond: z.number().int().min(1024).default(DEFAULT_READER_RATE.bytesPerSecond),
        byteBurst: z.number().int().min(1024).default(DEFAULT_READER_RATE.byteBurst),
      })
      .strict()
      .default(DEFAULT_READER_RATE)
      .describe(
        'Per-reader publish rate and volume (embedded broker); over it: dropped, not acked, counted.',
      ),
    connectionAdmission: z
      .object({
        adaptive: z
          .boolean()
          .default(DEFAULT_ADMISSION.adaptive)
          .describe('New-connection rate follows load (false: fixed at mqtt.maxConnectionsPerSecond).'),
        maxPerSecond: z.number().int().min(1).default(DEFAULT_ADMISSION.maxPerSecond),
        minPerSecond: z.number().int().min(1).default(DEFAULT_ADMISSION.minPerSecond),
        parkMs: z
          .number()
          .int()
          .min(0)
          .max(60_000)
          .default(DEFAULT_ADMISSION.parkMs)
          .describe(
            "Longest a connection waits for its slot (0: closed at once); keep under the readers' connect timeout.",
          ),
        maxParked: z.number().int().min(0).default(DEFAULT_ADMISSION.maxParked),
        busyLagMs: z.number().min(1).default(DEFAULT_ADMISSION.busyLagMs),
        busyBacklog: z.number().int().min(1).default(DEFAULT_ADMISSION.busyBacklog),
        busyConnack: z
          .boolean()
          .default(DEFAULT_ADMISSION.busyConnack)
          .describe('A refused connection gets CONNACK "Server unavailable" (3) before the close.'),
        maxHandshakes: z
          .number()
          .int()
          .min(0)
          .default(DEFAULT_ADMISSION.maxHandshakes)
          .describe(
            'Most admitted connections on their way to their CONNACK at once; the rest wait parked (0: no limit).',
          ),
      })
      .strict()
      .default(DEFAULT_ADMISSION)
      .describe('Connection admission of the embedded broker (broker/admission.ts).'),
    maxSeqJump: z
      .number()
      .int()
      .min(1000)
      .default(DEFAULT_MAX_SEQ_JUMP)
      .describe("A seq more than this above the reader's high-water mark is refused (seq-jump)."),
    rejectLogPerMinute: z
      .number()
      .int()
      .min(1)
      .default(10)
      .describe('Reject log lines per reader and reason per minute; counters stay exact.'),
  })
  .strict();

export type LimitsSettings = z.output<typeof LimitsSettings>;
