import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'simulator/cli.ts', ...args], {
    encoding: 'utf8',
    timeout: 90_000,
  });

describe('simulator CLI', () => {
  it('prints help and exits 0', () => {
    const r = cli(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--faults');
    expect(r.stdout).toContain('--schedules');
  });

  it('refuses bad usage with exit code 2, naming the problem', () => {
    const r = cli(['--readers', 'many']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--readers must be an integer');
    const f = cli(['--faults', 'meteor']);
    expect(f.status).toBe(2);
    expect(f.stderr).toContain('unknown fault kind "meteor"');
  });

  it('runs a small day, prints the summary table with the seed and exits 0', { timeout: 90_000 }, () => {
    const r = cli(['--readers', '3', '--staff', '2', '--hours', '1', '--seed', '5', '--faults', 'partition']);
    expect(r.stderr).toContain('seed             5');
    expect(r.stderr).toContain('PASS  positive-feedback-taps-delivered');
    expect(r.status).toBe(0);
  });
});
