/**
 * Local time for reports: UTC instants (epoch ms) → local dates and times in one injected time zone
 * (default Europe/Stockholm). DST is handled by asking Intl for the zone's offset, cached per quarter hour
 * (every real zone changes its offset on a quarter-hour boundary), so a report over 650,000 visits does not
 * format 650,000 dates.
 */

const QUARTER_HOUR = 15 * 60_000;
const DAY_MS = 86_400_000;

export interface LocalParts {
  /** 'YYYY-MM-DD' in the zone. */
  date: string;
  /** Minutes since local midnight (0..1439). */
  minuteOfDay: number;
}

export class ReportClock {
  private readonly fmt: Intl.DateTimeFormat;
  private readonly offsets = new Map<number, number>();
  private readonly dayOffsets = new Map<number, number | null>();
  private readonly dates = new Map<number, string>();

  constructor(readonly timeZone = 'Europe/Stockholm') {
    try {
      this.fmt = new Intl.DateTimeFormat('en-CA', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      });
    } catch {
      throw new Error(
        `unknown time zone "${timeZone}": use an IANA zone name such as Europe/Stockholm (the default)`,
      );
    }
  }

  /**
   * The zone's offset from UTC (ms, local = utc + offset) at the instant. Cached per UTC day when the offset
   * is the same at both ends of that day (no change inside it), otherwise per quarter hour.
   */
  offsetMs(utcMs: number): number {
    const day = Math.floor(utcMs / DAY_MS);
    let off = this.dayOffsets.get(day);
    if (off === undefined) {
      const a = this.exactOffset(day * DAY_MS);
      off = a === this.exactOffset(day * DAY_MS + DAY_MS - QUARTER_HOUR) ? a : null;
      this.dayOffsets.set(day, off);
    }
    return off ?? this.exactOffset(utcMs);
  }

  private exactOffset(utcMs: number): number {
    const bucket = Math.floor(utcMs / QUARTER_HOUR);
    let off = this.offsets.get(bucket);
    if (off === undefined) {
      const at = bucket * QUARTER_HOUR;
      const p: Record<string, number> = {};
      for (const part of this.fmt.formatToParts(at)) if (part.type !== 'literal') p[part.type] = +part.value;
      const asUtc = Date.UTC(p.year!, p.month! - 1, p.day, p.hour, p.minute, p.second);
      off = asUtc - at;
      this.offsets.set(bucket, off);
    }
    return off;
  }

  /**
   * The zone's offsets over [fromMs, toMs) as segments: each starts at `fromMs` (the first at the window's
   * start) and holds until the next; exactly the offsets `offsetMs` gives (per UTC day, per quarter hour on
   * a day with a change), so SQL can place instants in local days with a CASE over a few instants.
   */
  offsetSegments(fromMs: number, toMs: number): Array<{ fromMs: number; offsetMs: number }> {
    const out: Array<{ fromMs: number; offsetMs: number }> = [];
    const push = (at: number, off: number) => {
      if (out.length === 0 || out[out.length - 1]!.offsetMs !== off) out.push({ fromMs: at, offsetMs: off });
    };
    for (let day = Math.floor(fromMs / DAY_MS); day * DAY_MS < toMs; day++) {
      const start = Math.max(fromMs, day * DAY_MS);
      this.offsetMs(start);
      if (this.dayOffsets.get(day) !== null) push(start, this.offsetMs(start));
      else
        for (
          let q = Math.floor(start / QUARTER_HOUR) * QUARTER_HOUR;
          q < (day + 1) * DAY_MS && q < toMs;
          q += QUARTER_HOUR
        )
          push(Math.max(q, fromMs), this.offsetMs(Math.max(q, fromMs)));
    }
    return out;
  }

  /** Local date and minute of day of the instant. */
  local(utcMs: number): LocalParts {
    const l = utcMs + this.offsetMs(utcMs);
    const dayNo = Math.floor(l / DAY_MS);
    let date = this.dates.get(dayNo);
    if (date === undefined) this.dates.set(dayNo, (date = dateOfDayNo(dayNo)));
    return { date, minuteOfDay: Math.floor((l - dayNo * DAY_MS) / 60_000) };
  }

  localDate(utcMs: number): string {
    return this.local(utcMs).date;
  }

  /** The UTC instant of local midnight starting `date`. */
  startOfDay(date: string): number {
    const naive = dayNoOf(date) * DAY_MS;
    let guess = naive - this.offsetMs(naive);
    guess = naive - this.offsetMs(guess);
    return guess;
  }

  /** [start of fromDate, start of the day after toDate): a half-open UTC window of whole local days. */
  window(fromDate: string, toDate: string): { fromMs: number; toMs: number } {
    return { fromMs: this.startOfDay(fromDate), toMs: this.startOfDay(addDays(toDate, 1)) };
  }
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Days since 1970-01-01 of a 'YYYY-MM-DD' (calendar arithmetic only, no zone). */
export function dayNoOf(date: string): number {
  const m = DATE_RE.exec(date);
  if (!m) throw new Error(`bad date "${date}": write it as YYYY-MM-DD, e.g. 2026-03-23`);
  return Math.floor(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!) / DAY_MS);
}

export function dateOfDayNo(dayNo: number): string {
  return new Date(dayNo * DAY_MS).toISOString().slice(0, 10);
}

export const addDays = (date: string, n: number): string => dateOfDayNo(dayNoOf(date) + n);

/** 1 = Monday … 7 = Sunday. */
export const isoWeekday = (date: string): number => ((dayNoOf(date) + 3) % 7) + 1;

/** ISO week label, e.g. '2026-W13'. */
export function isoWeek(date: string): string {
  const dn = dayNoOf(date);
  const thursday = dn - isoWeekday(date) + 4;
  const year = new Date(thursday * DAY_MS).getUTCFullYear();
  const jan1 = Math.floor(Date.UTC(year, 0, 1) / DAY_MS);
  const week = Math.floor((thursday - jan1) / 7) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** Every date from `from` to `to`, inclusive. */
export function datesBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = dayNoOf(from), end = dayNoOf(to); d <= end; d++) out.push(dateOfDayNo(d));
  return out;
}

/** The first Monday on or after the first day of month 'YYYY-MM'. */
export function firstMondayOf(month: string): string {
  const first = `${month}-01`;
  return addDays(first, (8 - isoWeekday(first)) % 7);
}

/** Months 'YYYY-MM' from `from` to `to` inclusive. */
export function monthsBetween(from: string, to: string): string[] {
  const out: string[] = [];
  let [y, m] = from.split('-').map(Number) as [number, number];
  const [ty, tm] = to.split('-').map(Number) as [number, number];
  while (y < ty || (y === ty && m <= tm)) {
    out.push(`${y}-${String(m).padStart(2, '0')}`);
    m++;
    if (m > 12) {
      m = 1;
      y++;
    }
  }
  return out;
}
