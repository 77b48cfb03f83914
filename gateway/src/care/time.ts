/**
 * Local dates and times in an injected IANA time zone (default Europe/Stockholm), with Intl only.
 *
 * DST rules (documented in docs/plan.md):
 * - a local time that does not exist (spring forward, e.g. 02:30 on 2026-03-29 in Stockholm) is read as
 *   the same wall-clock reading after the jump (03:30 CEST), i.e. the instant `offset-before` would give;
 * - a local time that exists twice (fall back, e.g. 02:30 on 2026-10-25) is read as the first one (CEST).
 */
export const DEFAULT_TIME_ZONE = 'Europe/Stockholm';

const formatters = new Map<string, Intl.DateTimeFormat>();
const formatter = (tz: string): Intl.DateTimeFormat => {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone: tz,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(tz, f);
  }
  return f;
};

/** Throws a readable error for an unknown zone name. */
export function assertTimeZone(tz: string): void {
  try {
    formatter(tz);
  } catch {
    throw new Error(`unknown time zone "${tz}": use an IANA name such as Europe/Stockholm`);
  }
}

interface Parts {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
}

const partsAt = (ms: number, tz: string): Parts => {
  const p: Record<string, number> = {};
  for (const x of formatter(tz).formatToParts(new Date(ms))) {
    if (x.type !== 'literal') p[x.type] = Number(x.value);
  }
  return { y: p.year!, mo: p.month!, d: p.day!, h: p.hour!, mi: p.minute!, s: p.second! };
};

const QUARTER = 900_000;
const offsets = new Map<string, number>();

/**
 * The zone's offset from UTC at instant `ms`, in ms (CET: +3 600 000). Cached per zone and quarter hour
 * (every IANA transition falls on a quarter hour UTC): Intl formatting was a fifth of a plan import's CPU.
 */
export function offsetAt(ms: number, tz: string): number {
  const bucket = Math.floor(ms / QUARTER) * QUARTER;
  const key = `${tz}|${bucket}`;
  let o = offsets.get(key);
  if (o === undefined) {
    const p = partsAt(bucket, tz);
    o = Date.UTC(p.y, p.mo - 1, p.d, p.h, p.mi, p.s) - bucket;
    if (offsets.size >= 100_000) offsets.clear();
    offsets.set(key, o);
  }
  return o;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** UTC epoch ms of a local date ('YYYY-MM-DD') and time ('HH:MM') in `tz` (see DST rules above). */
export function localToUtcMs(date: string, time: string, tz: string = DEFAULT_TIME_ZONE): number {
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const [h, mi] = time.split(':').map(Number) as [number, number];
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  // Offsets in force a day before and after bracket any transition near this wall time.
  const before = offsetAt(wall - 86_400_000, tz);
  const after = offsetAt(wall + 86_400_000, tz);
  const candidates = [wall - before, wall - after].sort((a, b) => a - b);
  for (const c of candidates) {
    if (c + offsetAt(c, tz) === wall) return c;
  }
  // No candidate shows this wall time: it falls in a spring-forward gap; read it with the offset before.
  return wall - before;
}

/** Local date and time of instant `ms` in `tz`. */
export function utcToLocal(ms: number, tz: string = DEFAULT_TIME_ZONE): { date: string; time: string } {
  const t = new Date(ms + offsetAt(ms, tz));
  return {
    date: `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`,
    time: `${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}`,
  };
}

/** The local date of instant `ms` in `tz`. */
export const localDateOf = (ms: number, tz: string = DEFAULT_TIME_ZONE): string => utcToLocal(ms, tz).date;

/** `date` plus `days` calendar days. */
export function addDays(date: string, days: number): string {
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const t = new Date(Date.UTC(y, mo - 1, d + days));
  return `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
}

/** [start, end) of a local day in UTC ms (23 or 25 hours long on DST change days). */
export function localDayBoundsMs(date: string, tz: string = DEFAULT_TIME_ZONE): [number, number] {
  return [localToUtcMs(date, '00:00', tz), localToUtcMs(addDays(date, 1), '00:00', tz)];
}
