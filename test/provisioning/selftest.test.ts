import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDeviceSettings } from '../../device/src/config.js';
import { SimulatedCardReader } from '../../device/src/drivers/simulated-reader.js';
import { SimulatedFeedback } from '../../device/src/drivers/simulated-feedback.js';
import { FEEDBACK_PATTERNS } from '../../device/src/ports/feedback.js';
import { runSelftest } from '../../device/src/selftest/selftest.js';
import { systemClock } from '../../protocol/index.js';
import { tempDir } from '../gateway/helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

describe('selftest checklist (in process)', () => {
  it('every failing line says what to do; the verdict is FAIL; feedback plays every pattern', async () => {
    const tmp = tempDir('vt-selftest-');
    cleanups.push(tmp.cleanup);
    const config = parseDeviceSettings({
      readerId: 'r-st-1',
      dataDir: join(tmp.dir, 'data'),
      fleetKey: 'test-fleet-key-0123456789',
      // nothing listens on port 1 of 127.0.0.1: connection refused at once
      mqtt: {
        url: 'mqtt://127.0.0.1:1',
        username: 'r-st-1',
        password: 'x'.repeat(30),
        connectTimeoutMs: 2_000,
      },
    });
    const clock = systemClock;
    const reader = new SimulatedCardReader({ clock, attachedAtStart: false });
    const feedback = new SimulatedFeedback({ clock });
    const lines: string[] = [];
    const r = await runSelftest({
      config,
      clock,
      logger: pino({ level: 'silent' }),
      random: Math.random,
      cardReader: reader,
      feedback,
      print: (l) => lines.push(l),
      inject: (uid) => reader.tap(uid),
      timesyncFlag: join(tmp.dir, 'no-such-flag'),
      attachWaitMs: 200,
    });
    expect(r.passed).toBe(false);
    const text = lines.join('\n');
    expect(text).toMatch(/\[ OK \] storage writable with room/);
    expect(text).toMatch(
      /\[FAIL\] card reader attached: no card reader found\n {7}→ plug the reader into a USB port/,
    );
    expect(text).toMatch(
      /\[FAIL\] gateway reachable, credentials accepted: mqtt:\/\/127\.0\.0\.1:1: .*\n {7}→ check that the gateway runs/,
    );
    expect(text).toMatch(/\[FAIL\] test tap round trip: skipped/);
    for (const res of r.results.filter((x) => !x.ok)) expect(res.fix, res.name).toBeTruthy();
    expect(feedback.signals.map((s) => s.pattern)).toEqual([...FEEDBACK_PATTERNS]);
    expect(lines.at(-1)).toMatch(/^VERDICT: FAIL \(\d problem\(s\) above\)\.$/);
  });
});
