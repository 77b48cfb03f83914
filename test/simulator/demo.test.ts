/**
 * `npm start` (simulator/demo.ts) as a user runs it: a generated care plan is imported into the real
 * gateway, the day is played at speed, plan alerts are printed as the planning backend receives them, and
 * Ctrl-C (SIGINT) stops it with a summary that agrees with what was printed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_ALERT_CONFIG } from '../../gateway/src/care/alerts.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'visittag-demo-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const minutes = (hhmm: string): number => {
  const [h, m] = hhmm.split(':').map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
};

describe('npm start (the demo)', () => {
  it(
    'imports the demo plan, prints late/missed alerts as they happen, and stops on Ctrl-C with a summary',
    { timeout: 180_000 },
    async () => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          import.meta.resolve('tsx'),
          join(ROOT, 'simulator/demo.ts'),
          '--speed',
          '3000',
          '--seed',
          '7',
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      let gone = false;
      const exited = new Promise<number | null>((res) =>
        child.on('exit', (code) => {
          gone = true;
          res(code);
        }),
      );
      const deadline = Date.now() + 150_000;
      while (!gone && !out.includes("the day's last tap is done") && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 200));
      expect(out).toContain("the day's last tap is done");
      child.kill('SIGINT');
      expect(await exited).toBe(0);

      const planned = /one planned day \(\d{4}-\d{2}-\d{2}, (\d+) planned visits\)/.exec(out);
      expect(Number(planned?.[1])).toBeGreaterThan(20);
      expect(out).toMatch(new RegExp(`care plan\\s+${planned?.[1]} planned visits imported`));

      const raised = [
        ...out.matchAll(
          /^(\d\d:\d\d)  ALERT (late|missed|understaffed)\s+(\S+) \((\S+)\), planned (\d\d:\d\d)  \[(\S+)\]$/gm,
        ),
      ];
      expect(raised.length).toBeGreaterThan(0);
      // each alert once, at or after its threshold
      const keys = raised.map((m) => `${m[6]}:${m[2]}`);
      expect(new Set(keys).size).toBe(keys.length);
      for (const m of raised) {
        const late = minutes(m[1]!) - minutes(m[5]!);
        if (m[2] === 'late') expect(late).toBeGreaterThanOrEqual(DEFAULT_ALERT_CONFIG.lateAfterMinutes);
        if (m[2] === 'missed') expect(late).toBeGreaterThanOrEqual(DEFAULT_ALERT_CONFIG.missedAfterMinutes);
      }
      const cleared = [...out.matchAll(/^\d\d:\d\d  cleared (late|missed|understaffed)\s/gm)];
      // the summary agrees with the lines printed and with what the planning backend received
      expect(out).toContain(`plan alerts        ${raised.length} raised, ${cleared.length} cleared`);
      const delivered = /delivered\s+(.*)$/m.exec(out)?.[1] ?? '';
      expect(delivered).toContain(`plan.alert.raised ${raised.length}`);
      if (cleared.length) expect(delivered).toContain(`plan.alert.cleared ${cleared.length}`);
      expect(out).toMatch(/taps\s+(\d+) \(\1 with feedback\)/);
      expect(out).toContain('redeliveries       0');
    },
  );
});
