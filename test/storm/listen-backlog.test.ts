/**
 * The embedded broker's listening socket has the accept queue `mqtt.listenBacklog` asks for (default 4096,
 * the kernel capping it at net.core.somaxconn), not Node's 511: in a reconnect storm of 10,000 readers a full
 * queue made the kernel drop SYNs, and each reader's kernel retried after 1, 3, 7, 15, 31 and 63 s
 * (bench/README.md, "The reconnect storm: the listen queue"). `ss` shows a listener's queue depth as Send-Q.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/index.js';
import { startGateway, tempDir } from '../gateway/helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Send-Q of the TCP listener on `port` (its accept-queue limit). */
function listenQueue(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' }).trim();
  const cols = out.split(/\s+/);
  expect(cols[0], `ss: ${out}`).toBe('LISTEN');
  return Number(cols[2]);
}

async function gateway(mqtt: Record<string, unknown>): Promise<Gateway> {
  const tmp = tempDir('vt-backlog-');
  cleanups.push(() => tmp.cleanup());
  const gw = await startGateway(tmp.dir, { mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0, ...mqtt } });
  cleanups.push(() => gw.stop());
  return gw;
}

describe('MQTT listener accept queue', () => {
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));

  it('is mqtt.listenBacklog deep (default 4096, capped by the kernel), not Node default 511', async () => {
    const byDefault = await gateway({});
    expect(listenQueue(byDefault.mqttPort ?? 0)).toBe(Math.min(4096, somaxconn));
    const set = await gateway({ listenBacklog: 1234 });
    expect(listenQueue(set.mqttPort ?? 0)).toBe(Math.min(1234, somaxconn));
  });
});
