/**
 * visittag-device: the process composition root (CONTRIBUTING.md, "Lifecycle and one composition root"). A thin shell over createDevice():
 * load + validate config, wire logger and status file, stop cleanly on SIGTERM.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import pino from 'pino';
import { ConfigError, loadDeviceSettings } from './src/config.js';
import { bashCompletion, EXIT, parseCommandLine, type CommandSpec } from '../runtime/cli.js';
import { formatHelp, jsonText } from '../runtime/help.js';
import { createSdNotifier } from '../runtime/sd-notify.js';
import { attachSimControl } from './src/cli/sim-control.js';
import { formatStatus, offlineStatus, statusFilePath } from './src/cli/status-cmd.js';
import { JournalIdentityError } from './src/core/journal.js';
import { plainBrokerProblem } from './src/provision/plain.js';
import { preloadMqtt } from './src/core/load-mqtt.js';
import { deviceClock } from './src/core/time.js';
import { createSystemdClockSync } from './src/drivers/systemd-clock-sync.js';
import { Device } from './src/device.js';
import { SimulatedCardReader } from './src/drivers/simulated-reader.js';
import type { DeviceSettings } from './src/config.js';

const HELP = formatHelp({
  program: 'visittag-device',
  summary: 'home-care visit tag reader firmware',
  usage: [
    'run    [--config FILE] [--sim-control stdin]',
    'status [--config FILE] [--json]',
    'provision --gateway URL --code CODE [--config FILE]   (provision --help)',
    'selftest [--config FILE]   checklist + test tap round trip (selftest --help)',
    'personalise-card --master-key-file FILE   blank NTAG 424 DNA → secure card (--help)',
    'completion bash   bash completion (| sudo tee /etc/bash_completion.d/visittag-device)',
  ],
  sections: [
    {
      title: 'Commands',
      lines: [
        'run      Start the device: card reader → journal → feedback → MQTT uplink. SIGTERM stops cleanly.',
        'status   Journal depth, oldest unacknowledged event, last ack, clock state, and (when the service',
        '         runs) whether the reader is attached and the gateway connected. Reads the journal only.',
      ],
    },
  ],
  options: [
    {
      flag: '--config FILE',
      text: 'Config file (JSON). Default: $VISITTAG_DEVICE_CONFIG or /etc/visittag/device.json',
    },
    {
      flag: '--sim-control stdin',
      text: '(simulated reader only) read "tap <uid>", "present <uid>", "remove", "bounce <uid>",',
    },
    {
      flag: '',
      text: '"detach", "attach" lines from stdin; print one JSON line per tap after its feedback.',
    },
    { flag: '--json', text: '(status) machine-readable output (one JSON document on stdout).' },
  ],
  reference: 'device/README.md',
});

/** The commands and their options, for bash completion. */
const COMMANDS: readonly CommandSpec[] = [
  { name: 'run', options: ['config', 'sim-control'] },
  { name: 'status', options: ['config', 'json'] },
  {
    name: 'provision',
    options: ['gateway', 'code', 'config', 'data-dir', 'reader', 'feedback', 'owner', 'force-new-identity'],
  },
  { name: 'selftest', options: ['config'] },
  { name: 'personalise-card', options: ['master-key-file'] },
  { name: 'completion', options: [] },
];

/** Where the status file lives: systemd's RuntimeDirectory (tmpfs), else /run/visittag, else the temp dir. */
function runtimeDir(create: boolean): string {
  const candidates = [process.env.RUNTIME_DIRECTORY, '/run/visittag', tmpdir()];
  for (const d of candidates) {
    if (!d) continue;
    if (!create) {
      if (existsSync(d)) return d;
      continue;
    }
    try {
      mkdirSync(d, { recursive: true });
      return d;
    } catch {
      // try the next
    }
  }
  return tmpdir();
}

function load(path: string): DeviceSettings {
  try {
    return loadDeviceSettings(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT.config);
    }
    throw err;
  }
}

async function run(cfgPath: string, simControl: boolean): Promise<void> {
  const cfg = load(cfgPath);
  const plain = plainBrokerProblem(cfg.mqtt); // mqtts by default (issue 16)
  if (plain) {
    process.stderr.write(`visittag-device: ${plain}\n`);
    process.exit(EXIT.config);
  }
  const logger = pino(
    {
      level: cfg.logLevel,
      name: 'visittag-device',
      redact: ['fleetKey', 'mqtt.password', 'password', '*.password'],
    },
    simControl ? pino.destination(2) : pino.destination(1),
  );
  const statusFile = statusFilePath(runtimeDir(true), cfg.readerId);
  let lastWritten = '';
  const writeStatus = (s: { readerAttached: boolean; connected: boolean }, running: boolean): void => {
    // Only on a change of what `status` shows (the runtime dir may be on the SD card when not under systemd).
    const key = `${running}/${s.readerAttached}/${s.connected}`;
    if (key === lastWritten) return;
    lastWritten = key;
    try {
      const tmp = `${statusFile}.tmp`;
      mkdirSync(dirname(statusFile), { recursive: true });
      writeFileSync(tmp, JSON.stringify({ pid: process.pid, running, ...s, writtenAt: Date.now() }));
      renameSync(tmp, statusFile);
    } catch (err) {
      logger.debug({ err }, 'status file not written');
    }
  };
  let reader: SimulatedCardReader | undefined;
  if (simControl) {
    if (cfg.reader.driver !== 'simulated') {
      process.stderr.write('--sim-control needs reader.driver "simulated"\n');
      process.exit(EXIT.usage);
    }
    reader = new SimulatedCardReader({ clock: deviceClock });
  }
  const device = new Device({
    config: cfg,
    logger,
    clockSync: createSystemdClockSync({ clock: deviceClock }),
    ...(reader ? { cardReader: reader } : {}),
    onStatus: (s) => writeStatus(s, device.isRunning),
  });
  const out = (obj: object): void => {
    process.stdout.write(`${JSON.stringify(obj)}\n`);
  };
  if (simControl) {
    device.on('tap', (t) => out({ type: 'tap', ...t }));
    device.on('auto-close', (a) => out({ type: 'auto-close', ...a }));
    device.on('refused', (r) => out({ type: 'refused', ...r }));
  }
  const sd = createSdNotifier(logger);
  let stopWatchdog = (): void => undefined;
  const abort = new AbortController();
  const stop = (why: string, code: number): void => {
    if (abort.signal.aborted) return;
    abort.abort();
    logger.info({ why }, 'stopping');
    sd.stopping();
    stopWatchdog();
    device
      .stop(2_000)
      .then(() => process.exit(code))
      .catch((err: unknown) => {
        logger.error({ err }, 'unclean stop');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  device.on('restart-requested', () => stop('restart requested by the gateway', 0));
  // MQTT.js is loaded before the reader starts: loading it holds the event loop (src/core/load-mqtt.ts).
  // A failure is the uplink's to report (it loads MQTT.js again); taps are journalled either way.
  await preloadMqtt().catch((err: unknown) => logger.warn({ err }, 'MQTT.js not preloaded'));
  try {
    await device.start();
  } catch (err) {
    if (err instanceof JournalIdentityError) {
      logger.fatal('journal belongs to another reader id; refusing to start');
      process.stderr.write(`visittag-device: ${err.message}\n`);
      process.exit(EXIT.config);
    }
    logger.fatal({ err }, 'device failed to start');
    process.stderr.write(`visittag-device: ${(err as Error).message}\n`);
    process.exit(1);
  }
  sd.ready();
  // The watchdog ping needs a live event loop and a device that still takes taps.
  stopWatchdog = sd.startWatchdog(() => device.isRunning);
  if (reader) {
    attachSimControl(process.stdin, reader, out);
    process.stdin.on('end', () => stop('control input closed', 0));
    out({ type: 'ready', bootId: device.bootId, status: device.status() });
  }
}

async function main(argv: string[]): Promise<void> {
  const defaultConfig = process.env.VISITTAG_DEVICE_CONFIG ?? '/etc/visittag/device.json';
  if (argv[0] === 'selftest') {
    process.exit(await (await import('./src/selftest/cli.js')).selftestCommand(argv.slice(1), defaultConfig));
  }
  if (argv[0] === 'personalise-card') {
    process.exit(await (await import('./src/cli/personalise-cmd.js')).personaliseCommand(argv.slice(1)));
  }
  if (argv[0] === 'provision') {
    process.exit(
      await (await import('./src/provision/cli.js')).provisionCommand(argv.slice(1), defaultConfig),
    );
  }
  if (argv[0] === 'completion') {
    if (argv[1] !== 'bash' || argv.length !== 2) {
      process.stderr.write('usage: visittag-device completion bash\n');
      process.exit(EXIT.usage);
    }
    process.stdout.write(bashCompletion('visittag-device', COMMANDS));
    return;
  }
  const parsed = parseCommandLine(argv, {
    config: { type: 'string' },
    'sim-control': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (!parsed.ok) {
    process.stderr.write(`${parsed.message}\n\n${HELP}\n`);
    process.exit(EXIT.usage);
  }
  const { values, positionals } = parsed;
  const cmd = positionals[0];
  if (values.help || cmd === 'help' || cmd === undefined) {
    process.stdout.write(`${HELP}\n`);
    process.exit(cmd === undefined && !values.help ? EXIT.usage : EXIT.ok);
  }
  const cfgPath = values.config ?? process.env.VISITTAG_DEVICE_CONFIG ?? '/etc/visittag/device.json';
  if (cmd === 'run') {
    const sim = values['sim-control'];
    if (sim !== undefined && sim !== 'stdin') {
      process.stderr.write('--sim-control takes "stdin"\n');
      process.exit(EXIT.usage);
    }
    await run(cfgPath, sim === 'stdin');
    return;
  }
  if (cmd === 'status') {
    const cfg = load(cfgPath);
    const sync = createSystemdClockSync({ clock: deviceClock });
    sync.synced();
    await new Promise((r) => setTimeout(r, 300)); // let the one-off timedatectl answer
    const st = offlineStatus(cfg, runtimeDir(false), sync.synced());
    process.stdout.write(values.json ? `${jsonText(st)}\n` : `${formatStatus(st)}\n`);
    return;
  }
  process.stderr.write(`unknown command "${cmd}"\n\n${HELP}\n`);
  process.exit(EXIT.usage);
}

await main(process.argv.slice(2));
