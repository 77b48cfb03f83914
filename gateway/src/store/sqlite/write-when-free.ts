import type { Db } from './db.js';

/**
 * Runs `fn` in an IMMEDIATE transaction of `db` and waits for SQLite's write lock without blocking the event loop.
 *
 * The gateway's file can have a second writer: the writer thread (visits/engine-thread.ts) holds the write lock
 * for each ingest commit (with its fsync) and each visits turn. A transaction of the gateway's own connection that
 * finds the lock taken waits in SQLite's busy handler, which sleeps (1, 2, 5, 10, 15, 20, 25 ms ...) inside the
 * call: the whole event loop, with MQTT, acks and HTTP, stands still meanwhile. Here the attempt is made with
 * the busy timeout at 0; when the lock is taken it fails at BEGIN (nothing done) and is tried again on a timer,
 * so the loop serves everything else between attempts. After `waitMs` (default: the connection's busy timeout,
 * 5 s as store/sqlite/db.ts opens it) the last attempt waits in SQLite as before, so a writer that holds the
 * lock for long still gets its error.
 *
 * For background writes whose callers can wait (the forwarder's delivered marks, the care matcher, the credential
 * tag cache). Inside an open transaction `fn` runs at once (a savepoint). `fn` may run more than once when an
 * attempt fails with SQLITE_BUSY after it started (it is rolled back first), so it must only touch the database.
 */
export function writeWhenFree<T>(db: Db, fn: () => T, opts: { waitMs?: number } = {}): Promise<T> {
  const run = db.transaction(fn);
  if (db.inTransaction) return attempt(run);
  const timeout = pragmas(db);
  const waitMs = opts.waitMs ?? timeout.ms;
  const first = tryOnce(run, timeout);
  if (first.ok) return Promise.resolve(first.value);
  if (first.error !== BUSY) return Promise.reject(asError(first.error));
  return (async () => {
    const start = performance.now();
    for (let delay = 1; performance.now() - start < waitMs; delay = Math.min(delay * 2, 8)) {
      await sleep(delay);
      if (!db.open) throw new Error('the database was closed while a write waited for the lock');
      const r = tryOnce(run, timeout);
      if (r.ok) return r.value;
      if (r.error !== BUSY) throw asError(r.error);
    }
    return run(); // the last attempt waits in SQLite's busy handler (the connection's own timeout)
  })();
}

const BUSY = Symbol('busy');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The busy timeout is set with a fresh PRAGMA each time: SQLite applies `PRAGMA busy_timeout = N` when the
 * statement is compiled, so re-running a prepared one changes nothing.
 */
interface Timeouts {
  off: () => void;
  on: () => void;
  /** The connection's own busy timeout, read at the first use (store/sqlite/db.ts opens with 5 s). */
  ms: number;
}
const timeouts = new WeakMap<Db, Timeouts>();
function pragmas(db: Db): Timeouts {
  let s = timeouts.get(db);
  if (!s) {
    const ms = Number(db.pragma('busy_timeout', { simple: true }));
    s = {
      off: () => void db.pragma('busy_timeout = 0'),
      on: () => void db.pragma(`busy_timeout = ${ms}`),
      ms,
    };
    timeouts.set(db, s);
  }
  return s;
}

function tryOnce<T>(run: () => T, timeout: Timeouts): { ok: true; value: T } | { ok: false; error: unknown } {
  timeout.off();
  try {
    return { ok: true, value: run() };
  } catch (e) {
    return { ok: false, error: isBusy(e) ? BUSY : e };
  } finally {
    timeout.on();
  }
}

function attempt<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (e) {
    return Promise.reject(asError(e));
  }
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

const isBusy = (e: unknown): boolean =>
  typeof e === 'object' &&
  e !== null &&
  typeof (e as { code?: unknown }).code === 'string' &&
  (e as { code: string }).code.startsWith('SQLITE_BUSY');
