import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A Mosquitto 2 broker for tests (Debian's package, installed by scripts/setup-system.sh): its own temp
 * dir and free loopback port, MQTT 5 (and 3.1.1) with shared subscriptions, no anonymous access, and
 * the dynamic security plugin holding every account (`$CONTROL/dynamic-security/v1`), initialised with
 * one admin account. Started as root, Mosquitto drops to the `mosquitto` user, so the dir is handed to
 * it; the log goes to a file (`log_dest file`: stdout would stay buffered until exit).
 *
 *   const b = await startMosquitto();
 *   b.url, b.admin.username / b.admin.password   // the dynsec admin (may use $CONTROL/#)
 *   await b.restart();                           // same port, same accounts (the dynsec JSON file)
 *   await b.destroy();
 */
export interface MosquittoBroker {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly admin: { username: string; password: string };
  log(): string;
  running(): boolean;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  restart(signal?: NodeJS.Signals): Promise<void>;
  destroy(): Promise<void>;
}

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/** The dynamic security plugin's shared object (its multiarch directory differs per architecture). */
export function findDynsecPlugin(): string | null {
  for (const dir of ['/usr/lib', ...safeList('/usr/lib').map((d) => join('/usr/lib', d))]) {
    const p = join(dir, 'mosquitto_dynamic_security.so');
    if (existsSync(p)) return p;
  }
  return null;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).filter((d) => d.endsWith('-linux-gnu'));
  } catch {
    return [];
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitForPort(port: number, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${why()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function mosquittoIds(): { uid: number; gid: number } | null {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('mosquitto:'));
  const f = line?.split(':');
  return f?.[2] && f[3] ? { uid: Number(f[2]), gid: Number(f[3]) } : null;
}

export async function startMosquitto(
  opts: { adminPassword?: string; extraConfig?: string[] } = {},
): Promise<MosquittoBroker> {
  if (!existsSync(MOSQUITTO_BIN)) {
    throw new Error(
      `${MOSQUITTO_BIN} not found. Fix: sudo bash scripts/setup-system.sh (installs mosquitto)`,
    );
  }
  const plugin = findDynsecPlugin();
  if (!plugin) {
    throw new Error(
      'mosquitto_dynamic_security.so not found. Fix: sudo bash scripts/setup-system.sh (mosquitto 2 ships it)',
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'vt-mosq-'));
  const admin = { username: 'visittag-admin', password: opts.adminPassword ?? 'dynsec-admin-password-0123' };
  const dynsec = join(dir, 'dynamic-security.json');
  // mosquitto_ctrl writes the admin account with a salted PBKDF2 hash and the admin role ($CONTROL/#).
  execFileSync('mosquitto_ctrl', ['dynsec', 'init', dynsec, admin.username, admin.password], {
    stdio: 'pipe',
  });
  const port = await freePort();
  const logFile = join(dir, 'mosquitto.log');
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      'per_listener_settings false',
      `plugin ${plugin}`,
      `plugin_opt_config_file ${dynsec}`,
      'persistence false',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'log_type subscribe',
      'connection_messages true',
      `log_dest file ${logFile}`,
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  writeFileSync(logFile, '');
  const ids = typeof process.getuid === 'function' && process.getuid() === 0 ? mosquittoIds() : null;
  for (const f of [dir, conf, dynsec, logFile]) {
    if (ids) chownSync(f, ids.uid, ids.gid);
  }
  chmodSync(dir, 0o755);

  let child: ChildProcess | null = null;
  const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const start = async (): Promise<void> => {
    if (child) return;
    const c = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    c.once('exit', () => {
      if (child === c) child = null;
    });
    child = c;
    await waitForPort(port, 10_000, () => `${stderr}\n${log().slice(-2000)}`);
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null) {
      child = null;
      return;
    }
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
    child = null;
  };
  try {
    await start();
  } catch (err) {
    await stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    admin,
    log,
    running: () => child !== null,
    stop,
    start,
    async restart(signal = 'SIGTERM') {
      await stop(signal);
      await start();
    },
    async destroy() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
