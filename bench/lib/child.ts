/**
 * Bench workers run in their own processes (their own event loops), started through bash so the
 * open-file limit can be raised for that process tree only. Parent ↔ child talk over Node IPC with a
 * tiny request/response protocol: `{id, cmd, args}` → `{id, ok, result | error}`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface WorkerHandle {
  name: string;
  pid: number;
  call<T = unknown>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
  /** Events a worker pushes without being asked (`{event, data}`). */
  onEvent(fn: (event: string, data: unknown) => void): void;
  kill(signal?: NodeJS.Signals): Promise<void>;
  readonly exited: boolean;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

const live = new Set<ChildProcess>();

/** Kills every worker still running (by pid, the ones this process started). */
export function killAllWorkers(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

export async function startWorker(opts: {
  name: string;
  file: string;
  logDir: string;
  args?: string[];
  nofile?: number;
  nodeFlags?: string[];
  readyTimeoutMs?: number;
  /** Run plain JS without the tsx loader (a transpiled build). */
  plainNode?: boolean;
}): Promise<WorkerHandle> {
  mkdirSync(opts.logDir, { recursive: true });
  const nofile = opts.nofile ?? 65_536;
  const flags = (opts.nodeFlags ?? []).map((f) => `'${f.replace(/'/g, '')}'`).join(' ');
  // Raise the soft (and, as root, hard) open-file limit for this process only; fall back to the hard limit.
  const script = `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec node ${flags} ${opts.plainNode ? '' : '--import tsx'} "$@"`;
  const log = createWriteStream(join(opts.logDir, `${opts.name}.log`), { flags: 'a' });
  const child = spawn('bash', ['-c', script, 'bench-worker', opts.file, ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, BENCH_WORKER: opts.name },
  });
  live.add(child);
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  let exited = false;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners: ((event: string, data: unknown) => void)[] = [];
  let nextId = 1;
  let readyResolve: (() => void) | null = null;
  const ready = new Promise<void>((r) => (readyResolve = r));
  child.on('message', (m: unknown) => {
    const msg = m as Partial<Reply> & { event?: string; data?: unknown };
    if (msg.event === 'ready') return readyResolve?.();
    if (typeof msg.event === 'string') {
      for (const l of listeners) l(msg.event, msg.data);
      return;
    }
    const p = pending.get(msg.id ?? -1);
    if (!p) return;
    pending.delete(msg.id as number);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`${opts.name}: ${msg.error ?? 'failed'}`));
  });
  child.on('exit', (code, signal) => {
    exited = true;
    live.delete(child);
    log.end();
    for (const p of pending.values()) p.reject(new Error(`${opts.name} exited (${code ?? signal})`));
    pending.clear();
  });
  const readyTimeout = opts.readyTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      once(child, 'exit').then(() => {
        throw new Error(`${opts.name} exited before it was ready (see ${opts.logDir}/${opts.name}.log)`);
      }),
      new Promise((_, rej) => {
        timer = setTimeout(
          () => rej(new Error(`${opts.name} not ready in ${readyTimeout} ms`)),
          readyTimeout,
        );
      }),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    name: opts.name,
    pid: child.pid ?? -1,
    get exited() {
      return exited;
    },
    call<T>(cmd: string, args?: unknown, timeoutMs = 600_000): Promise<T> {
      if (exited) return Promise.reject(new Error(`${opts.name} has exited`));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const t = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${opts.name}: ${cmd} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(t);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        });
        child.send({ id, cmd, args });
      });
    },
    onEvent(fn) {
      listeners.push(fn);
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (exited) return;
      const gone = once(child, 'exit');
      child.kill(signal);
      await gone;
    },
  };
}
