/**
 * Plan import: CSV (as planning systems and Excel export it) and JSON, to validated planned visits.
 * Pure: no I/O. Every bad row is reported with its line (CSV) or index (JSON) and a reason that says the
 * fix; the caller imports nothing when there is any. Formats: docs/plan.md.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { readCsv } from './csv.js';
import { LocalDate, Ref, type PlannedServiceCode, type ServiceCode } from './model.js';
import type { NewPlannedVisit } from './store.js';
import { localToUtcMs, utcToLocal } from './time.js';

export interface RowError {
  /** CSV: 1-based line in the file; JSON: 1-based position in `visits`. */
  line: number;
  reason: string;
}

export interface ImportContext {
  areaId: string;
  fromDate: string;
  toDate: string;
  timeZone: string;
  /** Known service codes: their standard minutes fill in codes given without minutes. */
  serviceCodes?: ReadonlyMap<string, ServiceCode>;
}

export interface ParsedPlan {
  visits: NewPlannedVisit[];
  errors: RowError[];
  /** CSV only. */
  delimiter?: string;
}

export const MAX_PLAN_ROWS = 2_000_000;

/** One planned visit as written in a file or a JSON request, before validation. */
export const PlanRowInput = z
  .object({
    plannedVisitId: Ref.optional(),
    clientRef: Ref,
    date: z.string().optional(),
    start: z.string().min(1, { message: 'start is empty: give HH:MM or YYYY-MM-DD HH:MM' }),
    plannedMinutes: z.union([z.number(), z.string()]),
    serviceCodes: z
      .union([
        z.string(),
        z.array(
          z
            .object({
              code: Ref,
              standardMinutes: z.number().min(0).max(1440).nullable().optional(),
              grantedMinutes: z.number().min(0).max(100000).nullable().optional(),
            })
            .strict(),
        ),
      ])
      .optional(),
    staffCount: z.union([z.number(), z.string()]).optional(),
    staffRefs: z.union([z.string(), z.array(Ref).max(2)]).optional(),
  })
  .strict();
export type PlanRowInput = z.infer<typeof PlanRowInput>;

/** The JSON API body (POST /api/plan/import). */
export const PlanImportRequest = z
  .object({
    areaId: Ref,
    fromDate: LocalDate,
    toDate: LocalDate,
    dryRun: z.boolean().default(false),
    visits: z.array(z.unknown()).max(MAX_PLAN_ROWS),
  })
  .strict()
  .refine((r) => r.fromDate <= r.toDate, { message: 'fromDate must not be after toDate' });
export type PlanImportRequest = z.infer<typeof PlanImportRequest>;

/** Header names (lower case, å/ä→a, ö→o, spaces and dashes → _) → field. Swedish and English. */
const HEADERS: Record<string, keyof PlanRowInput> = {
  planned_visit_id: 'plannedVisitId',
  plannedvisitid: 'plannedVisitId',
  visit_id: 'plannedVisitId',
  besok_id: 'plannedVisitId',
  besoksid: 'plannedVisitId',
  besoks_id: 'plannedVisitId',
  client_ref: 'clientRef',
  clientref: 'clientRef',
  client: 'clientRef',
  brukare: 'clientRef',
  brukar_id: 'clientRef',
  date: 'date',
  datum: 'date',
  start: 'start',
  starttid: 'start',
  tid: 'start',
  planned_minutes: 'plannedMinutes',
  plannedminutes: 'plannedMinutes',
  minutes: 'plannedMinutes',
  minuter: 'plannedMinutes',
  planerad_tid: 'plannedMinutes',
  service_codes: 'serviceCodes',
  servicecodes: 'serviceCodes',
  insatser: 'serviceCodes',
  insatskoder: 'serviceCodes',
  staff_count: 'staffCount',
  staffcount: 'staffCount',
  antal_personal: 'staffCount',
  dubbelbemanning: 'staffCount',
  staff: 'staffRefs',
  staff_refs: 'staffRefs',
  staffrefs: 'staffRefs',
  personal: 'staffRefs',
};

const normHeader = (h: string): string =>
  h
    .trim()
    .toLowerCase()
    .replace(/[åä]/g, 'a')
    .replace(/ö/g, 'o')
    .replace(/[\s-]+/g, '_');

/** "22,5" (Swedish decimal comma) or "22.5" → 22.5; null when not a number. */
export function parseDecimal(s: string | number): number | null {
  if (typeof s === 'number') return Number.isFinite(s) ? s : null;
  const t = s.trim().replace(/\s/g, '').replace(',', '.');
  return /^-?\d+(\.\d+)?$/.test(t) ? Number(t) : null;
}

const isoInstant = /^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
const localDateTime = /^(\d{4}-\d{2}-\d{2})[ T](\d{1,2})[:.](\d{2})(?::00)?$/;
const timeOnly = /^(\d{1,2})[:.](\d{2})$/;

/** Reads date + start: `start` as HH:MM (with `date`), `YYYY-MM-DD HH:MM`, or an ISO instant with offset. */
function readStart(
  date: string | undefined,
  start: string,
  tz: string,
): { ok: true; localDate: string; localStart: string; startMs: number } | { ok: false; reason: string } {
  const s = start.trim();
  let m = isoInstant.exec(s);
  if (m) {
    const ms = Date.parse(s);
    if (Number.isNaN(ms)) return { ok: false, reason: `start "${s}" is not a valid time` };
    const l = utcToLocal(ms, tz);
    return { ok: true, localDate: l.date, localStart: l.time, startMs: ms };
  }
  let d: string | undefined;
  let hh: string;
  let mm: string;
  m = localDateTime.exec(s);
  if (m) {
    [, d, hh, mm] = m as unknown as [string, string, string, string];
    if (date && date.trim() && date.trim() !== d) {
      return { ok: false, reason: `date ${date.trim()} and start ${s} disagree: give the date once` };
    }
  } else {
    m = timeOnly.exec(s);
    if (!m) {
      return {
        ok: false,
        reason: `start "${s.slice(0, 40)}" is not a time: write HH:MM or YYYY-MM-DD HH:MM`,
      };
    }
    [, hh, mm] = m as unknown as [string, string, string];
    d = date?.trim();
    if (!d)
      return {
        ok: false,
        reason: 'no date: add a date column (YYYY-MM-DD) or write start as YYYY-MM-DD HH:MM',
      };
  }
  if (!LocalDate.safeParse(d).success) {
    return { ok: false, reason: `date "${String(d).slice(0, 20)}" is not a calendar date: write YYYY-MM-DD` };
  }
  const h = Number(hh);
  const mi = Number(mm);
  if (h > 23 || mi > 59) return { ok: false, reason: `start ${s} is not a time of day (00:00-23:59)` };
  const localStart = `${String(h).padStart(2, '0')}:${mm}`;
  return { ok: true, localDate: d, localStart, startMs: localToUtcMs(d, localStart, tz) };
}

const splitList = (s: string): string[] =>
  s
    .split(/[|+\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** `HYG:20|MED:5:30` → codes with standard (and granted) minutes; decimal comma allowed. */
function readCodes(
  v: PlanRowInput['serviceCodes'],
  known: ReadonlyMap<string, ServiceCode> | undefined,
): { ok: true; codes: PlannedServiceCode[] } | { ok: false; reason: string } {
  if (v === undefined || v === '') return { ok: true, codes: [] };
  const fill = (code: string, std: number | null | undefined, granted: number | null | undefined) => ({
    code,
    standardMinutes: std ?? known?.get(code)?.standardMinutes ?? null,
    grantedMinutes: granted ?? null,
  });
  if (Array.isArray(v))
    return { ok: true, codes: v.map((c) => fill(c.code, c.standardMinutes, c.grantedMinutes)) };
  const codes: PlannedServiceCode[] = [];
  for (const part of splitList(v)) {
    const [code, std, granted] = part.split(':');
    if (!code || !Ref.safeParse(code).success) {
      return {
        ok: false,
        reason: `service code "${part.slice(0, 30)}" is not a code: write CODE or CODE:minutes, separated by |`,
      };
    }
    const s = std === undefined || std === '' ? null : parseDecimal(std);
    const g = granted === undefined || granted === '' ? null : parseDecimal(granted);
    if ((std && s === null) || (granted && g === null)) {
      return { ok: false, reason: `minutes in "${part.slice(0, 30)}" are not a number (22 or 22,5)` };
    }
    codes.push(fill(code, s, g));
  }
  if (codes.length > 32) return { ok: false, reason: 'more than 32 service codes on one visit' };
  return { ok: true, codes };
}

const derivedId = (ctx: ImportContext, clientRef: string, date: string, start: string, n: number): string =>
  `pv-${createHash('sha256').update(`${ctx.areaId}|${clientRef}|${date}|${start}|${n}`).digest('hex').slice(0, 24)}`;

/** Validates rows (CSV or JSON, already split into fields) into planned visits. */
export function validateRows(rows: Array<{ line: number; row: unknown }>, ctx: ImportContext): ParsedPlan {
  const visits: NewPlannedVisit[] = [];
  const errors: RowError[] = [];
  const ids = new Map<string, number>();
  const occurrences = new Map<string, number>();
  for (const { line, row } of rows) {
    const p = PlanRowInput.safeParse(row);
    if (!p.success) {
      const i = p.error.issues[0]!;
      errors.push({ line, reason: `${i.path.join('.') || 'row'}: ${i.message}` });
      continue;
    }
    const r = p.data;
    const when = readStart(r.date, r.start, ctx.timeZone);
    if (!when.ok) {
      errors.push({ line, reason: when.reason });
      continue;
    }
    if (when.localDate < ctx.fromDate || when.localDate > ctx.toDate) {
      errors.push({
        line,
        reason: `date ${when.localDate} is outside the import range ${ctx.fromDate}..${ctx.toDate}: widen --from/--to or remove the row`,
      });
      continue;
    }
    const minutes = parseDecimal(r.plannedMinutes);
    if (minutes === null || minutes < 0 || minutes > 1440) {
      errors.push({
        line,
        reason: `planned minutes "${String(r.plannedMinutes).slice(0, 20)}" must be a number 0-1440 (22 or 22,5)`,
      });
      continue;
    }
    let staffCount: 1 | 2 = 1;
    if (r.staffCount !== undefined && r.staffCount !== '') {
      const t = String(r.staffCount).trim().toLowerCase();
      if (t === '2' || t === 'ja' || t === 'yes' || t === 'true') staffCount = 2;
      else if (t === '1' || t === 'nej' || t === 'no' || t === 'false') staffCount = 1;
      else {
        errors.push({
          line,
          reason: `staff count "${t.slice(0, 10)}" must be 1 or 2 (or ja/nej for double staffing)`,
        });
        continue;
      }
    }
    const staffRefs =
      r.staffRefs === undefined ? [] : Array.isArray(r.staffRefs) ? r.staffRefs : splitList(r.staffRefs);
    const badStaff = staffRefs.find((s) => !Ref.safeParse(s).success);
    if (badStaff !== undefined) {
      errors.push({
        line,
        reason: `staff ref "${badStaff.slice(0, 30)}" must be a pseudonymous id (letters, digits, . _ : -)`,
      });
      continue;
    }
    if (staffRefs.length > staffCount) {
      errors.push({
        line,
        reason: `${staffRefs.length} staff planned for a visit with staff count ${staffCount}: set staff count 2 or list one`,
      });
      continue;
    }
    const codes = readCodes(r.serviceCodes, ctx.serviceCodes);
    if (!codes.ok) {
      errors.push({ line, reason: codes.reason });
      continue;
    }
    const occKey = `${r.clientRef}|${when.localDate}|${when.localStart}`;
    const n = (occurrences.get(occKey) ?? 0) + 1;
    occurrences.set(occKey, n);
    const plannedVisitId =
      r.plannedVisitId ?? derivedId(ctx, r.clientRef, when.localDate, when.localStart, n);
    const dup = ids.get(plannedVisitId);
    if (dup !== undefined) {
      errors.push({
        line,
        reason: `planned visit id ${plannedVisitId} is already on line ${dup}: ids must be unique`,
      });
      continue;
    }
    ids.set(plannedVisitId, line);
    visits.push({
      plannedVisitId,
      clientRef: r.clientRef,
      localDate: when.localDate,
      localStart: when.localStart,
      startMs: when.startMs,
      plannedMinutes: minutes,
      serviceCodes: codes.codes,
      staffCount,
      plannedStaffRefs: staffRefs,
    });
  }
  return { visits, errors };
}

/** Parses a plan CSV (text already decoded: see `decodeCsvBytes`). */
export function parsePlanCsv(text: string, ctx: ImportContext): ParsedPlan {
  const csv = readCsv(text, { maxRecords: MAX_PLAN_ROWS });
  if (!csv.ok) return { visits: [], errors: [{ line: csv.line, reason: csv.reason }] };
  const cols = csv.header.map((h) => HEADERS[normHeader(h)] ?? null);
  const unknown = csv.header.filter((_, i) => cols[i] === null);
  if (unknown.length) {
    return {
      visits: [],
      errors: [
        {
          line: csv.headerLine,
          reason: `unknown column(s) ${unknown.map((u) => `"${u.slice(0, 30)}"`).join(', ')}: use client_ref, date, start, planned_minutes, service_codes, staff_count, staff, planned_visit_id (or the Swedish names in docs/plan.md)`,
        },
      ],
      delimiter: csv.delimiter,
    };
  }
  const missing = (['clientRef', 'start', 'plannedMinutes'] as const).filter((f) => !cols.includes(f));
  if (missing.length) {
    return {
      visits: [],
      errors: [
        {
          line: csv.headerLine,
          reason: `the header lacks ${missing.join(', ')}: see docs/plan.md for the columns`,
        },
      ],
      delimiter: csv.delimiter,
    };
  }
  if (csv.records.length > MAX_PLAN_ROWS) {
    return {
      visits: [],
      errors: [
        { line: csv.headerLine, reason: `more than ${MAX_PLAN_ROWS} rows: split the file by area or dates` },
      ],
    };
  }
  const rows: Array<{ line: number; row: unknown }> = [];
  const errors: RowError[] = [];
  for (const rec of csv.records) {
    if (rec.fields.length !== cols.length) {
      errors.push({
        line: rec.line,
        reason: `${rec.fields.length} fields where the header has ${cols.length}: check the separator ("${csv.delimiter === '\t' ? 'tab' : csv.delimiter}") and quote fields that contain it`,
      });
      continue;
    }
    const row: Record<string, string> = {};
    cols.forEach((c, i) => {
      const v = rec.fields[i]!;
      if (c && v !== '') row[c] = v;
    });
    rows.push({ line: rec.line, row });
  }
  const res = validateRows(rows, ctx);
  return {
    visits: res.visits,
    errors: [...errors, ...res.errors].sort((a, b) => a.line - b.line),
    delimiter: csv.delimiter,
  };
}

/** Validates the JSON API's `visits` array (rows are numbered from 1). */
export function parsePlanJson(visits: readonly unknown[], ctx: ImportContext): ParsedPlan {
  return validateRows(
    visits.map((row, i) => ({ line: i + 1, row })),
    ctx,
  );
}
