/**
 * Runs the visits engine in a worker thread with its own SQLite connection (engine-worker.ts), so turning
 * taps into visits and outbox rows uses the second core and never holds up the gateway's event loop (MQTT,
 * the ingest's group commits and acks). The ingest's committed events are handed over in memory with each
 * commit; the backlog (events handed and not yet processed) is counted here for the ingest's back-pressure.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type pino from 'pino';
import type { AnomalyKind } from '../../../protocol/index.js';
import type { CommitOutcome, IngestItem } from '../store/ingest-store.js';
import type { SkipReason } from './engine.js';
import type { CommittedEvents } from './handed.js';

export interface EngineWorkerData {
  /** The gateway's SQLite file. */
  path: string;
  /** Events per turn (one transaction) before the worker reports and takes new messages. */
  budget: number;
  /** Visit writes of the gateway's thread (store/sqlite/visit-index.ts SharedWrites; a SharedArrayBuffer, not copied). */
  writes: Int32Array;
  /** Visits the thread's visit index holds at most (absent: the default). */
  indexMaxVisits?: number;
}

export type ToEngine =
  | { t: 'committed'; id: number; readerIds: string[]; committed: CommittedEvents }
  /** An ingest group commit, done on the worker's connection (EngineThread.commit). */
  | { t: 'commit'; id: number; items: readonly IngestItem[] }
  | { t: 'stop' };

export type FromEngine =
  | { t: 'ready' }
  | {
      t: 'turn';
      n: number;
      kinds: AnomalyKind[];
      skipped: SkipReason[];
      /** The last `committed` id the worker had taken in when the turn ended. */
      seen: number;
      /** Nothing marked is left. */
      idle: boolean;
    }
  | {
      t: 'log';
      level: 'debug' | 'info' | 'warn' | 'error';
      bindings: Record<string, unknown>;
      obj: Record<string, unknown>;
      msg: string;
    }
  | {
      t: 'commit-done';
      id: number;
      /** Absent when the commit failed (`error`): nothing of it is durable, nothing is acked. */
      outcome?: CommitOutcome;
      /** Events of the commit handed to the worker's engine (the backlog grows by them). */
      handed: number;
      error?: string;
    }
  | { t: 'stopped' };

export interface EngineThreadOptions {
  path: string;
  writes: Int32Array;
  indexMaxVisits?: number;
  logger: pino.Logger;
  /** Events per turn (default 500: a turn holds SQLite's write lock, and the ingest's commit waits for it). */
  budget?: number;
  /** After each turn: events processed, anomalies recorded, events skipped. */
  onTurn: (n: number, kinds: AnomalyKind[], skipped: SkipReason[]) => void;
  /** The worker died (logged): the pipeline goes back to processing in its own thread. */
  onExit: () => void;
}

export class EngineThread {
  private readonly worker: Worker;
  private nextId = 0;
  private held = 0;
  private stopped: Promise<void> | null = null;
  private exited = false;
  /** Resolves when the worker has opened its connection and listens (or has exited). */
  readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;
  /** Group commits sent to the worker and not answered yet. */
  private readonly commits = new Map<
    number,
    { resolve: (o: CommitOutcome) => void; reject: (err: Error) => void }
  >();

  constructor(private readonly o: EngineThreadOptions) {
    const here = import.meta.url;
    const ts = here.endsWith('.ts');
    const entry = new URL(`./engine-worker.${ts ? 'ts' : 'js'}`, here).href;
    // From TypeScript sources (tsx, the tests) the worker registers tsx's loader before loading its entry.
    const code = ts
      ? `import(${JSON.stringify(tsxApi(here))}).then((t) => { t.register(); return import(${JSON.stringify(entry)}); })`
      : `import(${JSON.stringify(entry)})`;
    this.ready = new Promise<void>((resolve) => (this.markReady = resolve));
    const w = new Worker(code, {
      eval: true,
      workerData: {
        path: o.path,
        budget: o.budget ?? 500,
        writes: o.writes,
        ...(o.indexMaxVisits !== undefined ? { indexMaxVisits: o.indexMaxVisits } : {}),
      } satisfies EngineWorkerData,
    });
    // the gateway's servers keep the process alive, not this thread; until it is ready it does (the start waits
    // for it: with nothing else holding the loop, a thread that fails to load would end the process silently)
    this.worker = w;
    const log = o.logger.child({ module: 'visits' });
    w.on('message', (m: FromEngine) => {
      switch (m.t) {
        case 'turn':
          this.held = m.idle && m.seen === this.nextId ? 0 : Math.max(0, this.held - m.n);
          o.onTurn(m.n, m.kinds, m.skipped);
          return;
        case 'commit-done': {
          const c = this.commits.get(m.id);
          this.commits.delete(m.id);
          this.held += m.handed;
          if (m.outcome) c?.resolve(m.outcome);
          else
            c?.reject(new Error(`group commit failed in the visits engine thread: ${m.error ?? 'unknown'}`));
          return;
        }
        case 'ready':
          w.unref();
          this.markReady();
          return;
        case 'log':
          o.logger.child(m.bindings)[m.level](m.obj, m.msg);
          return;
        case 'stopped':
          return;
      }
    });
    w.on('error', (err) => log.error({ err }, 'visits engine thread failed'));
    w.on('exit', (code) => {
      this.exited = true;
      this.held = 0;
      // a commit the worker did not answer may or may not be durable: it is not acked, the devices resend
      for (const c of this.commits.values()) c.reject(new Error('the visits engine thread exited'));
      this.commits.clear();
      this.markReady();
      if (this.stopped === null) {
        log.error({ code }, 'visits engine thread exited; processing in the main thread');
        o.onExit();
      }
    });
  }

  /** Events handed to the worker and not yet processed (the ingest's back-pressure). */
  backlog(): number {
    return this.held;
  }

  get alive(): boolean {
    return !this.exited && this.stopped === null;
  }

  /** A group commit's readers and events; never throws. */
  committed(readerIds: string[], committed: CommittedEvents | undefined): void {
    if (!this.alive) return;
    const id = ++this.nextId;
    const events = committed ?? [];
    for (const c of events) this.held += c.events.length;
    this.worker.postMessage({ t: 'committed', id, readerIds, committed: events } satisfies ToEngine);
  }

  /**
   * One ingest group commit on the worker's connection (durable when this resolves), after which the worker
   * processes its events itself: they are not sent again through `committed`. Rejects when the commit fails
   * or the worker exits first.
   */
  commit(items: readonly IngestItem[]): Promise<CommitOutcome> {
    if (!this.alive) return Promise.reject(new Error('the visits engine thread is not running'));
    const id = ++this.nextId;
    return new Promise<CommitOutcome>((resolve, reject) => {
      this.commits.set(id, { resolve, reject });
      this.worker.postMessage({ t: 'commit', id, items } satisfies ToEngine);
    });
  }

  /**
   * Ends the worker at once, as a crash would (fault tests): what it did not answer is not acked.
   * `duringCommit`: first waits (at most 5 s) until a group commit is in the worker's hands.
   */
  async kill(duringCommit = false): Promise<void> {
    for (let i = 0; duringCommit && this.commits.size === 0 && i < 5_000; i++)
      await new Promise((r) => setTimeout(r, 1));
    await this.worker.terminate();
  }

  /** Lets the worker finish what is marked (at most `timeoutMs`), closes its connection, ends it. */
  stop(timeoutMs = 5_000): Promise<void> {
    if (this.stopped) return this.stopped;
    const w = this.worker;
    this.stopped = this.exited
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const t = setTimeout(() => void w.terminate().then(() => resolve()), timeoutMs);
          w.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          w.postMessage({ t: 'stop' } satisfies ToEngine);
        });
    return this.stopped;
  }
}

/** The file URL of tsx's ESM register API (`tsx/esm/api`, import condition), found through its package.json. */
function tsxApi(from: string): string {
  const pkgPath = createRequire(from).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as {
    exports: Record<string, { import?: { default?: string } } | string>;
  };
  const entry = pkg.exports['./esm/api'];
  const rel = typeof entry === 'string' ? entry : entry?.import?.default;
  if (rel === undefined)
    throw new Error('tsx has no ./esm/api export: cannot start the visits engine thread');
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}
