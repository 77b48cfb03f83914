import { z } from 'zod';

/**
 * Retention per data class (issue 16, docs/retention.md). A number is days; 'keep' never deletes. The defaults
 * delete only transport and operational data; the care record (visits, other anomalies) and the audit trails are
 * kept until the municipality sets a period, because records law may require keeping them.
 */
const Days = z.union([z.number().int().min(1).max(36_500), z.literal('keep')]);

export const RetentionSettings = z
  .object({
    rawEventsDays: Days.default(180).describe(
      'Raw tap events (and their rejected/conflicting copies) once the visits engine has processed them.',
    ),
    rejectsDays: Days.default(30).describe('Rejected reader messages (the reject log).'),
    outboxDeliveredDays: Days.default(30).describe(
      'Visit events delivered to the planning backend (never pending or dead-lettered ones).',
    ),
    unknownCardAnomaliesDays: Days.default(180).describe(
      'Unknown-card anomalies (taps of unregistered cards).',
    ),
    anomaliesDays: Days.default('keep').describe('Every other visit anomaly (part of the care record).'),
    visitsDays: Days.default('keep').describe(
      'Closed visits (the care record; records law may require keeping them). Never open visits or visits with undelivered events. At least 8 days.',
    ),
    auditDays: Days.default('keep').describe(
      'The access audit log and the visit audit (accountability record).',
    ),
    gapTimeoutMinutes: z
      .number()
      .int()
      .min(0)
      .max(525_600)
      .default(1440)
      .describe(
        "A reader's missing seq is declared lost after this long (metric, audit); 0: only an operator's accept.",
      ),
    intervalMinutes: z
      .number()
      .int()
      .min(1)
      .max(10_080)
      .default(60)
      .describe('How often the retention job runs.'),
    batchRows: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(2000)
      .describe('Rows deleted per transaction (a run deletes in batches, yielding between them).'),
  })
  .strict()
  .refine((s) => s.visitsDays === 'keep' || s.visitsDays >= 8, {
    message: 'visitsDays must be at least 8 (the visit rules look 7 days back for overlapping visits)',
    path: ['visitsDays'],
  });

export type RetentionSettings = z.output<typeof RetentionSettings>;
export { RETENTION_CLASSES, daysOf, type RetentionClass } from '../store/retention.js';

export const DEFAULT_RETENTION: RetentionSettings = RetentionSettings.parse({});
