import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { LIMITS, MIN_FLEET_KEY_BYTES, ReaderCardKeys, ReaderId, VisitWindows } from '../../protocol/index.js';

/**
 * The device config file (JSON), validated once at start-up (CONTRIBUTING.md, "Config validated once"). Every error names the
 * field path and how to fix it. `version` is the file format version (migrations go in migrateConfig).
 */

const Pin = z.union([z.string().min(1), z.number().int().min(0)]);

export const ReaderSettings = z
  .discriminatedUnion('driver', [
    z.object({ driver: z.literal('simulated') }).strict(),
    z
      .object({
        driver: z.literal('nfc-pcsc'),
        readerName: z
          .string()
          .min(1)
          .optional()
          .describe('Use the first PC/SC reader whose name contains this text (default: any).'),
        pcscdSocket: z.string().min(1).optional().describe('pcscd socket (default /run/pcscd/pcscd.comm).'),
        desfire: z
          .object({
            keyFile: z
              .string()
              .min(1)
              .describe(
                'DESFire read-key file {"version":1,"desfireKey":"<32 hex>"}, mode 0600 (beside the config if relative).',
              ),
            aid: z
              .string()
              .regex(/^[0-9A-Fa-f]{6}$/, 'must be 6 hex characters (a 3-byte application id)')
              .describe("The fleet's DESFire application id."),
            keyNo: z
              .number()
              .int()
              .min(1)
              .max(13)
              .default(1)
              .describe(
                'Application key number to authenticate with: a read-only key, never 0 (the application master).',
              ),
          })
          .strict()
          .optional()
          .describe('Authenticate DESFire EV2/EV3 cards (issue 18, docs/secure-cards.md); absent: UID only.'),
      })
      .strict(),
  ])
  .describe('Card reader driver: "simulated" (no hardware) or "nfc-pcsc" (ACR122U/ACR1252U via pcscd).');
export type ReaderSettings = z.infer<typeof ReaderSettings>;

export const FeedbackSettings = z
  .discriminatedUnion('driver', [
    z.object({ driver: z.literal('console') }).strict(),
    z.object({ driver: z.literal('simulated') }).strict(),
    z.object({ driver: z.literal('reader-led') }).strict(),
    z
      .object({
        driver: z.literal('johnny-five'),
        ioPlugin: z
          .string()
          .min(1)
          .describe('IO plugin module name, e.g. "raspi-io" (Pi 1-4) or "pigpio-io"; must be installed.'),
        pins: z
          .object({ green: Pin, red: Pin, buzzer: Pin.optional() })
          .strict()
          .describe('GPIO pins in the IO plugin naming, e.g. "GPIO17" or "P1-11".'),
      })
      .strict(),
  ])
  .describe('Feedback driver: "console", "simulated", "reader-led" (nfc-pcsc reader only) or "johnny-five".');
export type FeedbackSettings = z.infer<typeof FeedbackSettings>;

const Backoff = z
  .object({
    baseMs: z.number().int().min(10).max(600_000).default(1_000),
    capMs: z.number().int().min(10).max(3_600_000).default(60_000),
  })
  .strict();

export const DeviceSettings = z
  .object({
    version: z.literal(1).default(1).describe('Config file format version.'),
    readerId: ReaderId,
    dataDir: z.string().min(1).describe('Directory for the journal (on the SD card).'),
    fleetKey: z
      .string()
      .min(MIN_FLEET_KEY_BYTES)
      .optional()
      .describe(
        `Fleet key for card pseudonyms (≥ ${MIN_FLEET_KEY_BYTES} chars; same on every reader). Readers provisioned before the sealed scheme only: a reader with cardKeys holds no fleet key.`,
      ),
    cardKeys: ReaderCardKeys.optional().describe(
      'Sealed scheme (docs/security.md "Key exposure"): this reader\'s own card key and the gateway\'s public seal key, written by provision.',
    ),
    mqtt: z
      .object({
        url: z
          .string()
          .regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'must start with mqtt://, mqtts://, ws:// or wss://'),
        username: z.string().min(1).optional(),
        password: z.string().min(1).optional(),
        ca: z.string().min(1).optional().describe('Path to a CA certificate file (PEM) for TLS.'),
        allowPlain: z
          .boolean()
          .optional()
          .describe(
            'true: `run` accepts a broker without TLS on another machine (closed test networks only).',
          ),
        cert: z.string().min(1).optional().describe('Path to a client certificate file (PEM).'),
        key: z.string().min(1).optional().describe('Path to the client key file (PEM).'),
        rejectUnauthorized: z.boolean().default(true),
        protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
        keepaliveSec: z.number().int().min(5).max(3_600).default(30),
        connectTimeoutMs: z.number().int().min(500).max(120_000).default(10_000),
      })
      .strict(),
    reader: ReaderSettings.default({ driver: 'simulated' }),
    feedback: FeedbackSettings.default({ driver: 'console' }),
    journal: z
      .object({
        capacity: z
          .number()
          .int()
          .min(10)
          .max(10_000_000)
          .default(100_000)
          .describe('Most unacknowledged events kept; when full, new taps are refused with fault feedback.'),
        warnAtFraction: z.number().min(0.1).max(1).default(0.8),
      })
      .strict()
      .default({ capacity: 100_000, warnAtFraction: 0.8 }),
    visit: VisitWindows.default({ repeatWindowMs: 10_000, maxOpenMs: 12 * 3_600_000 }),
    uplink: z
      .object({
        batchSize: z.number().int().min(1).max(LIMITS.maxBatchEvents).default(100),
        window: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(8)
          .describe('Batches in flight before waiting for acks.'),
        ackTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
        backoff: Backoff.default({ baseMs: 1_000, capMs: 60_000 }),
        statusIntervalMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
      })
      .strict()
      .default({
        batchSize: 100,
        window: 8,
        ackTimeoutMs: 10_000,
        backoff: { baseMs: 1_000, capMs: 60_000 },
        statusIntervalMs: 60_000,
      }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();
export type DeviceSettings = z.infer<typeof DeviceSettings>;
export type DeviceSettingsInput = z.input<typeof DeviceSettings>;

const FIXES: Record<string, string> = {
  readerId: 'set "readerId" to the id the gateway registered (letters, digits, ".", "_", "-")',
  dataDir: 'set "dataDir" to a writable directory, e.g. "/var/lib/visittag"',
  fleetKey:
    'set "fleetKey" to the fleet key from the gateway admin (same on every reader), or provision the reader (visittag-device provision): it then gets its own cardKeys and no fleet key',
  'mqtt.url': 'set "mqtt.url", e.g. "mqtts://gateway.example:8883"',
  reader: 'set "reader.driver" to "simulated" or "nfc-pcsc"',
  feedback: 'set "feedback.driver" to "console", "simulated", "reader-led" or "johnny-five"',
};

function fixFor(path: string): string {
  for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const fix = FIXES[p];
    if (fix) return fix;
  }
  return 'see device/README.md "Config reference"';
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid device config:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Validates a parsed config object; throws ConfigError listing every problem (field, message, fix). */
export function parseDeviceSettings(raw: unknown): DeviceSettings {
  const migrated = migrateConfig(raw);
  const res = DeviceSettings.safeParse(migrated);
  if (res.success) {
    const s = res.data;
    const extra: string[] = [];
    if (s.feedback.driver === 'reader-led' && s.reader.driver !== 'nfc-pcsc') {
      extra.push(
        'feedback.driver: "reader-led" needs reader.driver "nfc-pcsc" (fix: use "console" or "johnny-five")',
      );
    }
    const keys = cardKeyProblem(s);
    if (keys) extra.push(keys);
    if ((s.mqtt.cert === undefined) !== (s.mqtt.key === undefined)) {
      extra.push('mqtt.cert / mqtt.key: give both or neither (fix: add the missing path)');
    }
    if (extra.length) throw new ConfigError(extra);
    return s;
  }
  const problems = res.error.issues.map((i) => {
    const path = i.path.join('.') || '(root)';
    return `${path}: ${i.message} (fix: ${fixFor(path)})`;
  });
  const keys = cardKeyProblem(migrated);
  if (keys && !problems.some((p) => p.startsWith('fleetKey:') || p.startsWith('cardKeys')))
    problems.push(keys);
  throw new ConfigError(problems);
}

/** A reader holds the fleet key (fleet-key scheme) or its card keys (sealed-v1), exactly one of them. */
function cardKeyProblem(raw: unknown): string | null {
  const o = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const fleet = o.fleetKey !== undefined;
  const sealed = o.cardKeys !== undefined;
  if (!fleet && !sealed) return `fleetKey: required when there are no cardKeys (fix: ${fixFor('fleetKey')})`;
  if (fleet && sealed) {
    return 'fleetKey: not with cardKeys (fix: remove "fleetKey": a reader with cardKeys never holds the fleet key)';
  }
  return null;
}

/** Config file format migrations: files without `version` are version 1. */
export function migrateConfig(raw: unknown): unknown {
  return raw;
}

/** Reads and validates a JSON config file. */
export function loadDeviceSettings(path: string): DeviceSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `(file): cannot read ${path}: ${(err as Error).message} (fix: pass --config <path> to an existing file)`,
    ]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`(file): ${path} is not valid JSON: ${(err as Error).message}`]);
  }
  const settings = parseDeviceSettings(json);
  // A relative dataDir means "beside the config file", as in the gateway's config: never the
  // current directory, which differs between a shell, systemd and the simulator (two configs would
  // otherwise share one journal by accident).
  const reader =
    settings.reader.driver === 'nfc-pcsc' && settings.reader.desfire
      ? {
          ...settings.reader,
          desfire: {
            ...settings.reader.desfire,
            keyFile: resolveBeside(path, settings.reader.desfire.keyFile),
          },
        }
      : settings.reader;
  return { ...settings, reader, dataDir: resolveBeside(path, settings.dataDir) };
}

/** `p` resolved against the folder of the config file `configPath` (absolute paths unchanged). */
export function resolveBeside(configPath: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dirname(resolve(configPath)), p);
}
