/**
 * A virtual reader in a child process (simulator/child-entry.ts), for faults that need a real SIGKILL:
 * device crash mid-write and power loss (the next boot starts with an unsynced clock).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childArgv } from '../child-entry.js';
import { DeviceClock, type VirtualClock } from '../clock.js';
import { IpcCaller, exitOf, send, type ChildMessage } from '../ipc.js';
import type { ActionKind } from '../scenario/types.js';
import type { DeviceParams, VirtualReader } from './types.js';

export const MAIN = fileURLToPath(new URL('./device-child-main.ts', import.meta.url));

export interface ChildReader extends VirtualReader {
  /** Moves the child's clock; resolves once it got there (or died). */
  tick(now: number): Promise<void> | undefined;
  readonly armed: boolean;
}

export function createChildReader(opts: {
  params: DeviceParams;
  clock: VirtualClock;
  synced: boolean;
}): ChildReader {
  const { params, clock } = opts;
  /** Mirror of the child's device clock, to know its wall time at a power cut. */
  const mirror = new DeviceClock(clock, { skewMs: params.skewMs, synced: opts.synced });
  let child: ChildProcess | null = null;
  let caller: IpcCaller | null = null;
  let ready = false;
  let boot = 0;
  let armed = false;
  let nextSynced = opts.synced;
  let lastWall: number | null = null;

  const launch = (): Promise<void> => {
    boot++;
    ready = false;
    armed = false;
    const c = spawn(process.execPath, childArgv(MAIN), {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: {
        ...process.env,
        VISITTAG_SIM_CHILD: JSON.stringify({
          params,
          nowMs: clock.now(),
          synced: nextSynced,
          lastWallMs: lastWall,
          boot,
        }),
      },
    });
    child = c;
    caller = new IpcCaller(c);
    c.on('error', () => undefined);
    c.on('message', (m: ChildMessage) => {
      if (m.type === 'signal') self.onSignal?.(m.pattern);
    });
    c.on('exit', () => {
      ready = false;
    });
    return new Promise<void>((resolve, reject) => {
      const onMsg = (m: ChildMessage) => {
        if (m.type !== 'ready') return;
        c.off('message', onMsg);
        ready = true;
        resolve();
      };
      c.on('message', onMsg);
      c.once('exit', (code, sig) =>
        reject(new Error(`reader ${params.readerId} exited during start (${code ?? sig})`)),
      );
    });
  };

  const self: ChildReader = {
    readerId: params.readerId,
    onSignal: null,
    get alive() {
      return ready && child !== null && child.exitCode === null && child.signalCode === null;
    },
    get armed() {
      return armed && self.alive;
    },
    start: launch,
    tick(now) {
      if (!caller || !self.alive) return;
      return caller.call('tick', now).then(
        () => undefined,
        () => undefined,
      );
    },
    async act(kind: ActionKind, uid: string) {
      if (!caller || !self.alive) return;
      await caller.call('act', { kind, uid }).catch(() => undefined); // rejected when it died mid-write
    },
    async state() {
      if (!caller || !self.alive) return null;
      try {
        return await caller.call<{ lastSeq: number; queueDepth: number } | null>('state');
      } catch {
        return null;
      }
    },
    async stop() {
      const c = child;
      if (!c || !self.alive || !caller) return;
      await caller.stop().catch(() => undefined);
      await exitOf(c);
    },
    async kill(o) {
      const c = child;
      if (!c || !self.alive) return;
      if (o?.midWrite || o?.afterFeedback) {
        armed = true;
        send(c, { type: o.afterFeedback ? 'arm-after-feedback' : 'arm-mid-write' });
        return;
      }
      c.kill('SIGKILL');
      await exitOf(c);
    },
    exited: () => (child ? exitOf(child) : Promise.resolve()),
    async restart(o) {
      if (self.alive) return;
      nextSynced = o.synced;
      lastWall = o.synced ? null : mirror.now();
      mirror.reboot({ synced: o.synced, lastWallMs: lastWall ?? mirror.now() });
      await launch();
    },
    sync() {
      mirror.sync();
      if (child && self.alive) send(child, { type: 'sync' });
    },
  };
  return self;
}
