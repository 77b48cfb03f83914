import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { resolve } from 'node:path';
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Gateway } from '../../gateway/index.js';
import { ADMIN_TOKEN, testConfig } from '../gateway/helpers.js';
import { deviceArgv } from '../support/entries.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `visittag-device …` (device/main.ts, test/support/entries.ts) to completion (bounded). */
export function deviceCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 40_000,
): Promise<CliResult> {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [...deviceArgv(), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      fail(
        new Error(`visittag-device ${args[0] ?? ''} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`),
      );
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/**
 * Writes the config file a coordinator's `visittag-gateway …` CLI uses against the running test gateway
 * `gw` (its data dir, its admin port and token); returns the file's path.
 */
export function writeGatewayCliConfig(gw: Gateway, gwDataDir: string, file: string): string {
  writeFileSync(
    file,
    JSON.stringify({
      ...testConfig(gwDataDir),
      admin: { host: '127.0.0.1', port: gw.adminPort, token: ADMIN_TOKEN },
    }),
  );
  return file;
}

/** Arguments of `visittag-device provision` for a simulated reader and feedback (what the tests provision). */
export function simulatedProvisionArgs(
  adminUrl: string,
  code: string,
  cfg: string,
  dataDir: string,
): string[] {
  return [
    'provision',
    '--gateway',
    adminUrl,
    '--code',
    code,
    '--config',
    cfg,
    '--data-dir',
    dataDir,
    '--reader',
    'simulated',
    '--feedback',
    'simulated',
    // The test gateways serve plain HTTP and MQTT (test/provisioning/tls.test.ts covers TLS).
    '--allow-plain-http',
    '--allow-plain-mqtt',
  ];
}

/** `visittag-device run --sim-control stdin` as a child: JSON lines out, tap commands in. */
export class RunningDevice {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(configPath: string, runtimeDir: string, env: Record<string, string> = {}) {
    this.proc = spawn(
      process.execPath,
      [...deviceArgv(), 'run', '--config', configPath, '--sim-control', 'stdin'],
      {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, RUNTIME_DIRECTORY: runtimeDir, ...env },
      },
    );
    this.proc.stdin.on('error', () => undefined);
    this.proc.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 20_000) this.stderr += d.toString();
    });
    createInterface({ input: this.proc.stdout }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not a control line
      }
    });
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
  }

  send(line: string): void {
    this.proc.stdin.write(`${line}\n`);
  }

  async waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 20_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      if (Date.now() > deadline)
        throw new Error(`device line not seen in ${timeoutMs} ms; stderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Clean stop (stdin closed → SIGTERM path); SIGKILL if it hangs. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}
