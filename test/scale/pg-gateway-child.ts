import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { childBundle } from '../../simulator/child-entry.js';
import { encode, topics, type TapEvent } from '../../protocol/index.js';

/** Helpers of the tests that run the real gateway/main.ts as child processes on PostgreSQL. */

export const REPO = resolve(import.meta.dirname, '../..');

export interface GatewayChild {
  proc: ChildProcess;
  mqttPort: number;
  adminPort: number;
  exited: Promise<number | null>;
  /** stdout lines so far (the gateway logs JSON lines there). */
  lines(): string[];
}

/**
 * gateway/main.ts from its child bundle (simulator/child-entry.ts: one esbuild bundle per test process, npm
 * packages in it), so a start costs well under a second of CPU instead of tsx's ~3 s on a 2-core machine.
 * The bundle is removed when the test process exits.
 */
export async function bundleGateway(): Promise<{ file: string; cleanup: () => void }> {
  return { file: await childBundle(join(REPO, 'gateway/main.ts')), cleanup: () => undefined };
}

/** Starts `main.mjs run --config FILE` and waits (bounded) for its ready line. */
export async function spawnGateway(entry: string, cfgFile: string): Promise<GatewayChild> {
  const proc = spawn(process.execPath, [entry, 'run', '--config', cfgFile], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  let stderr = '';
  const lines: string[] = [];
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let buf = '';
  const ready = new Promise<{ mqttPort: number; adminPort: number }>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`gateway child not ready in 60 s: ${stderr}`)), 60_000);
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const line of parts) {
        lines.push(line);
        if (line.includes('"event":"ready"')) {
          clearTimeout(timer);
          res(JSON.parse(line) as { mqttPort: number; adminPort: number });
        }
      }
    });
    void exited.then((code) =>
      rej(new Error(`gateway child exited (${code}) before ready: ${stderr}\n${lines.join('\n')}`)),
    );
  });
  return { proc, ...(await ready), exited, lines: () => [...lines] };
}

export const T0 = Date.UTC(2026, 10, 23, 8);

/**
 * Deterministic taps of one reader: `cards` cards, each alternating start/stop (visit ids per card and
 * round), so a resend is byte-identical.
 */
export function tapOf(readerId: string, seq: number, cardOf: (k: number) => string, cards = 3): TapEvent {
  const k = (seq - 1) % cards;
  const n = Math.floor((seq - 1) / cards);
  return {
    readerId,
    seq,
    eventId: `${readerId}-e${seq}`,
    card: cardOf(k + 1),
    decision: n % 2 === 0 ? 'start' : 'stop',
    visitId: `${readerId}-v${k}-${Math.floor(n / 2)}`,
    time: { wallMs: T0 + seq * 60_000, bootId: 'b1', monoMs: seq * 60_000, synced: true },
  };
}

export const eventsPayload = (readerId: string, events: TapEvent[]): Buffer =>
  encode('events', {
    schemaVersion: 1,
    readerId,
    sentAt: { wallMs: Date.now(), bootId: 'b1', monoMs: 1, synced: true },
    events,
  });

export { topics };
