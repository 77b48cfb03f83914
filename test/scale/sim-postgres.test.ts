import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { RunReport } from '../../simulator/run.js';
import { REPO } from './pg-gateway-child.js';

/**
 * `npm run sim -- --store postgres --instances 3`, small: the simulator's day on three real gateway
 * processes (gateway/pg-instance.ts) on one PostgreSQL database behind Mosquitto 2 with an MQTT 5
 * shared subscription, both engines started by the command itself. A `gateway-kill` SIGKILLs one
 * instance mid-day and a `reset` cuts every reader connection; the invariant checker must pass and
 * the summary is the embedded run's.
 */

function sim(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'simulator/cli.ts', ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 540_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm run sim -- --store postgres --instances N', () => {
  it('refuses several instances on SQLite (exit 2, names the flag)', async () => {
    const r = await sim(['--instances', '3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--instances above 1 needs --store postgres');
  });

  it(
    'three instances on PostgreSQL behind Mosquitto, one SIGKILLed: every invariant holds',
    { timeout: 600_000 },
    async () => {
      const r = await sim([
        ...['--readers', '4', '--staff', '3', '--hours', '3', '--seed', '7'],
        ...['--faults', 'gateway-kill,reset', '--store', 'postgres', '--instances', '3', '--json'],
      ]);
      expect(r.stderr).toContain('3 instance(s) on PostgreSQL behind Mosquitto');
      const [report] = JSON.parse(r.stdout) as RunReport[];
      if (!report) throw new Error(`no report: ${r.stderr.slice(-3000)}`);
      const failed = report.results.filter((c) => !c.ok && c.severity === 'invariant');
      expect(failed.map((c) => `${c.name}: ${c.failures.slice(0, 3).join('; ')}`)).toEqual([]);
      expect(report.ok).toBe(true);
      expect(r.code).toBe(0);
      expect(report.gateway).toMatch(/^3 instance/);
      expect(report.faults['gateway-kill']).toBe(1);
      expect(report.skippedFaults).toEqual([]);
      // not vacuous: visits reached the backend through the instances
      expect(report.counts.backendEvents['visit.started'] ?? 0).toBeGreaterThan(0);
      expect(report.counts.backendEvents['visit.ended'] ?? 0).toBeGreaterThan(0);
      // the summary is the embedded run's table
      expect(r.stderr).toContain('PASS  positive-feedback-taps-delivered');
      expect(r.stderr).toContain('PASS  exactly-once-by-key');
    },
  );
});
