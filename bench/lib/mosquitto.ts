/**
 * A real Mosquitto for the baselines, on a free loopback port, with its config and log in a temp dir.
 * Started as root it drops to user `mosquitto`, so the dir is handed to that user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './net.js';

export interface Mosquitto {
  url: string;
  port: number;
  version: string;
  logTail(): string;
  stop(): Promise<void>;
}

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export function mosquittoAvailable(): boolean {
  return existsSync(MOSQUITTO_BIN);
}

export async function startMosquitto(): Promise<Mosquitto> {
  if (!mosquittoAvailable()) throw new Error(`${MOSQUITTO_BIN} not found: run npm run setup:system`);
  const dir = mkdtempSync(join(tmpdir(), 'visittag-bench-mosq-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const log = join(dir, 'mosquitto.log');
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      `log_dest file ${log}`,
      'log_type error',
      'log_type warning',
      // Baseline at its best: no queue drops for the one slow subscriber, a wide in-flight window.
      'max_queued_messages 0',
      'max_inflight_messages 1000',
      '',
    ].join('\n'),
  );
  writeFileSync(log, '');
  if (userInfo().uid === 0) {
    const id = spawnSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'mosquitto'], { encoding: 'utf8' });
    const uid = Number(id.stdout.trim());
    const g = Number(gid.stdout.trim());
    if (Number.isInteger(uid) && Number.isInteger(g) && id.status === 0) {
      for (const p of [dir, conf, log]) chownSync(p, uid, g);
    }
  }
  const ver = spawnSync(MOSQUITTO_BIN, ['-h'], { encoding: 'utf8' });
  const version = /mosquitto version (\S+)/.exec(ver.stdout)?.[1] ?? 'unknown';
  const child: ChildProcess = spawn(
    'bash',
    ['-c', `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${MOSQUITTO_BIN} -c "$0"`, conf],
    { stdio: 'ignore' },
  );
  let exited = false;
  child.on('exit', () => (exited = true));
  try {
    await waitForPort(port, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`mosquitto did not start: ${(err as Error).message}; log: ${readFileSync(log, 'utf8')}`);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    version,
    logTail: () => readFileSync(log, 'utf8').slice(-2000),
    async stop() {
      if (!exited) {
        const gone = once(child, 'exit');
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
