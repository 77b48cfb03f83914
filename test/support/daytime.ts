/**
 * Tests that build "today's" care plan around the real clock (a visit planned two hours ago, one
 * twenty minutes ago, a registration five hours ago) only mean what they say during the local day:
 * run at 00:30 in Stockholm, "two hours ago" is yesterday and the live day view rightly leaves it out.
 * `pinDaytime()` moves this test process's wall clock (and, through `browserDaytimeScript`, a page's)
 * forward to 09:00 local when the real local time is between 22:00 and 06:00; otherwise it changes nothing.
 * Time keeps running; timers are untouched (only `Date` is replaced). Outside vitest it does nothing.
 *
 * `VISITTAG_TEST_NOW` (an ISO time) pretends the suite started at that instant, to show the hours that
 * used to fail: `VISITTAG_TEST_NOW=2026-12-06T00:30:00+01:00 VISITTAG_TEST_DAYTIME=off npx vitest run
 * test/web-api` fails; without `VISITTAG_TEST_DAYTIME=off` it passes.
 */
const ZONE = 'Europe/Stockholm';
const HOUR = 3_600_000;

function localHourMinute(ms: number): { hour: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: ZONE,
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(new Date(ms));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? '0');
  return { hour: get('hour'), minute: get('minute') };
}

/** How far to move `ms` forward so that it falls at 09:00 local (0 when it is already daytime). */
export function daytimeShiftMs(ms: number): number {
  const { hour, minute } = localHourMinute(ms);
  if (hour >= 6 && hour < 22) return 0;
  const hoursTo9 = hour < 6 ? 9 - hour : 33 - hour;
  // approximate by whole hours, then correct for a daylight saving change on the way
  let target = ms + hoursTo9 * HOUR - minute * 60_000;
  const got = localHourMinute(target).hour;
  target += (9 - got) * HOUR;
  return target - ms;
}

let offsetMs: number | null = null;
/** The real `Date`, kept to undo a pin: this module is loaded before any pin it makes. */
const RealDate = globalThis.Date;

/** The offset this process's `Date` runs ahead of the real clock (after `pinDaytime`). */
export function daytimeOffsetMs(): number {
  return offsetMs ?? 0;
}

/** Moves this test file's `Date` to daytime if needed (idempotent); returns the offset applied. */
export function pinDaytime(): number {
  if (offsetMs !== null) return offsetMs;
  // only under the test runner (the web bench imports the same page helpers and runs on the real clock)
  if (!process.env.VITEST) return (offsetMs = 0);
  const real = Date.now();
  const pretend = process.env.VISITTAG_TEST_NOW ? Date.parse(process.env.VISITTAG_TEST_NOW) : real;
  if (Number.isNaN(pretend))
    throw new Error(`VISITTAG_TEST_NOW is not an ISO time: ${process.env.VISITTAG_TEST_NOW}`);
  const shift = process.env.VISITTAG_TEST_DAYTIME === 'off' ? 0 : daytimeShiftMs(pretend);
  offsetMs = pretend - real + shift;
  if (offsetMs !== 0) shiftDate(globalThis, offsetMs);
  return offsetMs;
}

/**
 * Undoes `pinDaytime()`: the real `Date` again. Test files share worker processes (vitest.config.ts), and
 * a pin left in place moved every later file's clock in that worker hours ahead: at night a gateway child
 * process's signed webhooks then looked hours old to a fake backend in the test's process and were refused
 * (test/scale/pg-gateway-process and pg-reports-instances waited in vain for their events). The per-file
 * setup (test/support/per-file-setup.ts) calls this after every file and pins again only for the files
 * whose helpers need daytime.
 */
export function unpinDaytime(): void {
  if (offsetMs !== null && offsetMs !== 0) globalThis.Date = RealDate;
  offsetMs = null;
}

/** Replaces `scope.Date` by one running `offset` ms ahead (the browser script below does the same). */
function shiftDate(scope: typeof globalThis, offset: number): void {
  const Real = scope.Date;
  class Shifted extends Real {
    constructor(...a: ConstructorParameters<DateConstructor> | []) {
      if (a.length === 0) super(Real.now() + offset);
      else super(...a);
    }
    static override now(): number {
      return Real.now() + offset;
    }
  }
  scope.Date = Shifted as DateConstructor;
}

/** An init script for a browser context: its `Date` runs `offsetMs` ahead, like this process's. */
export function browserDaytimeScript(offset = daytimeOffsetMs()): string {
  if (offset === 0) return '';
  return `(() => {
  const Real = Date;
  const off = ${offset};
  class Shifted extends Real {
    constructor(...a) { if (a.length === 0) super(Real.now() + off); else super(...a); }
    static now() { return Real.now() + off; }
  }
  globalThis.Date = Shifted;
})();`;
}
