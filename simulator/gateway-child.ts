/** The gateway as a child process (for SIGKILL and restart faults), on the parent's virtual time. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childArgv } from './child-entry.js';
import type { VirtualClock } from './clock.js';
import { adminGet, type GatewayHost, type GatewayHostParams } from './gateway-host.js';
import { IpcCaller, exitOf, type ChildMessage } from './ipc.js';

export const MAIN = fileURLToPath(new URL('./gateway-child-main.ts', import.meta.url));

export async function startChildGateway(opts: {
  params: GatewayHostParams;
  clock: VirtualClock;
  seed?: number;
}): Promise<GatewayHost> {
  let child: ChildProcess | null = null;
  let caller: IpcCaller | null = null;
  let mqttPort = 0;
  let adminUrl = '';
  let ready = false;
  let boots = 0;

  const launch = (): Promise<void> => {
    boots++;
    ready = false;
    const c = spawn(process.execPath, childArgv(MAIN), {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: {
        ...process.env,
        VISITTAG_SIM_GATEWAY: JSON.stringify({
          params: opts.params,
          nowMs: opts.clock.now(),
          seed: (opts.seed ?? 1) + boots,
        }),
      },
    });
    child = c;
    caller = new IpcCaller(c);
    c.on('error', () => undefined);
    c.on('exit', () => {
      ready = false;
    });
    return new Promise<void>((resolve, reject) => {
      c.on('message', (m: ChildMessage) => {
        if (m.type !== 'ready') return;
        mqttPort = m.mqttPort ?? 0;
        adminUrl = m.adminUrl ?? '';
        ready = true;
        resolve();
      });
      c.once('exit', (code, sig) => reject(new Error(`gateway child exited during start (${code ?? sig})`)));
    });
  };
  const alive = () => ready && child !== null && child.exitCode === null && child.signalCode === null;
  await launch();

  return {
    get mqttPort() {
      return mqttPort;
    },
    get adminUrl() {
      return adminUrl;
    },
    get alive() {
      return alive();
    },
    async addReader(r) {
      await caller?.call('addReader', r);
    },
    async addCard(c) {
      await caller?.call('addCard', c);
    },
    api: (path) => adminGet(adminUrl, opts.params.adminToken, path),
    tick(now) {
      if (!caller || !alive()) return;
      return caller.call('tick', now).then(
        () => undefined,
        () => undefined,
      );
    },
    async kill() {
      const c = child;
      if (!c || !alive()) return;
      c.kill('SIGKILL');
      await exitOf(c);
    },
    async restart() {
      if (alive()) return;
      await launch();
    },
    async syncReaders() {
      if (alive()) await caller?.call('syncReaders');
    },
    async stop() {
      const c = child;
      if (!c || !alive() || !caller) return;
      await caller.stop().catch(() => undefined);
      await exitOf(c);
    },
  };
}
