import { parseSubcommand, toStderr, toStdout } from '../../../runtime/cli.js';
import pino from 'pino';
import { systemClock } from '../../../protocol/index.js';
import { ConfigError, loadDeviceSettings, type DeviceSettings } from '../config.js';
import { createCardReader, createFeedback } from '../drivers/factory.js';
import { SimulatedCardReader } from '../drivers/simulated-reader.js';
import type { CardReader } from '../ports/card-reader.js';
import { runSelftest } from './selftest.js';

export const SELFTEST_HELP = `visittag-device selftest [--config FILE] [--timesync-flag FILE] [--tap-timeout SECONDS]

Checks this reader end to end and prints a checklist with a verdict: storage, clock, card reader,
feedback (watch and listen: it plays every pattern), gateway + credentials, and a test tap that
travels to the gateway and back (marked selftest: never a visit). Stop the service first.
Exit code 0 only when every line passes.`;

export async function selftestCommand(argv: string[], defaultConfig: string): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      'timesync-flag': { type: 'string' },
      'tap-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    SELFTEST_HELP,
    toStdout,
    toStderr,
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const values = parsed.values;
  let cfg: DeviceSettings;
  try {
    cfg = loadDeviceSettings(values.config ?? defaultConfig);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return err instanceof ConfigError ? 78 : 1;
  }
  // The checklist goes to stdout; logs (warnings only) to stderr.
  const logger = pino(
    { level: 'warn', name: 'visittag-selftest', redact: ['password', '*.password'] },
    pino.destination(2),
  );
  const clock = systemClock;
  const deps = { logger, clock };
  let reader: CardReader;
  let inject: ((uid: string) => void) | undefined;
  try {
    if (cfg.reader.driver === 'simulated') {
      const sim = new SimulatedCardReader({ clock });
      reader = sim;
      inject = (uid) => sim.tap(uid);
    } else {
      reader = await createCardReader(cfg.reader, deps);
    }
    const feedback = await createFeedback(cfg.feedback, { ...deps, reader });
    const tapTimeout = values['tap-timeout'] ? Number(values['tap-timeout']) * 1000 : undefined;
    const r = await runSelftest({
      config: cfg,
      clock,
      logger,
      random: Math.random,
      cardReader: reader,
      feedback,
      print: (l) => process.stdout.write(`${l}\n`),
      ...(inject ? { inject } : {}),
      ...(values['timesync-flag'] ? { timesyncFlag: values['timesync-flag'] } : {}),
      ...(tapTimeout && tapTimeout > 0 ? { tapTimeoutMs: tapTimeout } : {}),
    });
    return r.passed ? 0 : 1;
  } catch (err) {
    process.stdout.write(`[FAIL] self-test could not run: ${(err as Error).message}\nVERDICT: FAIL\n`);
    return 1;
  }
}
