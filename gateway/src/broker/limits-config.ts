import { z } from 'zod';
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
