/** What every row gets: the profile, where to log, and workers/temp dirs that are cleaned up after the row. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startWorker, type WorkerHandle } from './child.js';
import type { Profile, Row } from './types.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const FLEET_KEY = 'bench-fleet-key-0123456789abcdef';
export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
export const BACKEND_SECRET = 'bench-webhook-secret-0123456789';

export class RowContext {
  private readonly workers: WorkerHandle[] = [];
  private readonly dirs: string[] = [];
  private readonly cleanups: (() => Promise<void>)[] = [];

  /** Rows finished so far (kept when the section later fails or times out). */
  readonly rows: Row[] = [];

  constructor(
    readonly profile: Profile,
    readonly logDir: string,
    readonly rowId: string,
    /** Progress line (stderr, when verbose). */
    readonly say: (msg: string) => void = () => undefined,
  ) {}

  /** Records a finished row and returns it. */
  done(row: Row): Row {
    this.rows.push(row);
    return row;
  }

  /** Starts `bench/workers/<file>.ts` in its own process (open-file limit raised for it). */
  async worker(name: string, file: string, nodeFlags: string[] = [], build?: string): Promise<WorkerHandle> {
    // BENCH_CPU_PROF=<worker file>[,…] writes V8 CPU profiles of those workers into <log dir>/<row>-<name>/
    // (one file per thread; the largest is the main thread, the other is tsx's loader thread).
    const prof = (process.env.BENCH_CPU_PROF ?? '').split(',');
    const tag = `${this.rowId}-${name}`;
    if (prof.includes(file)) {
      nodeFlags = [...nodeFlags, '--cpu-prof', `--cpu-prof-dir=${join(this.logDir, tag)}`];
    }
    const heap = (process.env.BENCH_HEAP_PROF ?? '').split(',');
    if (heap.includes(file)) {
      nodeFlags = [...nodeFlags, '--heap-prof', `--heap-prof-dir=${join(this.logDir, tag)}`];
    }
    const w = await startWorker({
      name: `${this.rowId}-${name}`,
      file: build ? join(build, 'bench/workers', `${file}.js`) : join(ROOT, 'bench/workers', `${file}.ts`),
      logDir: this.logDir,
      nodeFlags,
      plainNode: Boolean(build),
    });
    this.workers.push(w);
    return w;
  }

  tempDir(tag: string): string {
    const d = mkdtempSync(join(tmpdir(), `visittag-bench-${tag}-`));
    this.dirs.push(d);
    return d;
  }

  onCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  async cleanup(): Promise<void> {
    for (const w of this.workers.splice(0).reverse()) {
      try {
        // A clean exit first (so --cpu-prof / --heap-prof files get written), then SIGKILL.
        if (!w.exited) await w.call('exit', undefined, 3_000).catch(() => undefined);
        for (let i = 0; i < 100 && !w.exited; i++) await new Promise((r) => setTimeout(r, 50));
        await w.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        /* best effort */
      }
    }
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

export function componentPresent(rel: string): boolean {
  return existsSync(join(ROOT, rel));
}

/** Gateway settings for a bench run: embedded broker on loopback, admin on loopback, port 0 unless given. */
export function gatewaySettings(opts: {
  dataDir: string;
  mqttPort?: number;
  backendUrl?: string;
}): Record<string, unknown> & { dataDir: string } {
  return {
    dataDir: opts.dataDir,
    fleetKey: FLEET_KEY,
    mqtt: { mode: 'embedded', host: '127.0.0.1', port: opts.mqttPort ?? 0 },
    admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
    backend: opts.backendUrl
      ? { url: opts.backendUrl, secret: BACKEND_SECRET, timeoutMs: 10_000, batchMax: 100 }
      : { secret: BACKEND_SECRET },
    logLevel: 'warn',
  };
}

export function readerIds(
  prefix: string,
  n: number,
): { readerId: string; password: string; clientRef: string }[] {
  return Array.from({ length: n }, (_, i) => {
    const readerId = `${prefix}-${String(i + 1).padStart(5, '0')}`;
    return { readerId, password: `pw-${readerId}-0123456789abcdefghij`, clientRef: `client-${i + 1}` };
  });
}
