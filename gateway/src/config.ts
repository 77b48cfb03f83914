import { readFileSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import { z } from 'zod';
import { MIN_FLEET_KEY_BYTES } from '../../protocol/index.js';
import { OidcSettings } from './auth/oidc-settings.js';
import { SecureCardPolicy } from './secure-cards/policy.js';
import { RetentionSettings } from './retention/policy.js';
import { LimitsSettings } from './broker/limits-config.js';

/**
 * Gateway settings, validated once at start-up (CONTRIBUTING.md, "Config validated once"). Every field has a description;
 * `formatConfigErrors` names each bad field and the fix, all at once.
 */
const Port = z.number().int().min(0).max(65_535);

const Backoff = z
  .object({
    baseMs: z.number().int().min(1).default(500).describe('First retry delay (ms).'),
    capMs: z.number().int().min(1).default(60_000).describe('Largest retry delay (ms).'),
  })
  .strict();

export const KdfSettings = z
  .object({
    logN: z
      .number()
      .int()
      .min(10)
      .max(20)
      .default(11)
      .describe('scrypt cost as log2(N) for reader credentials (see gateway/README.md "Credentials").'),
    r: z.number().int().min(1).max(32).default(8).describe('scrypt block size.'),
    p: z.number().int().min(1).max(16).default(1).describe('scrypt parallelism.'),
  })
  .strict();
export type KdfSettings = z.infer<typeof KdfSettings>;

const Embedded = z
  .object({
    mode: z.literal('embedded'),
    host: z.string().min(1).default('0.0.0.0').describe('Address the MQTT listener binds to.'),
    port: Port.default(1883).describe('MQTT port (8883 is usual with TLS); 0 picks a free port.'),
    tls: z
      .object({
        certFile: z.string().min(1).describe('PEM certificate chain file.'),
        keyFile: z.string().min(1).describe('PEM private key file.'),
        caFile: z
          .string()
          .min(1)
          .optional()
          .describe('PEM CA that signed certFile, handed to readers at provisioning (private CA).'),
      })
      .strict()
      .optional()
      .describe('Serve MQTT over TLS when set (recommended in production).'),
    allowPlain: z
      .boolean()
      .optional()
      .describe(
        '`run` refuses plain MQTT (no tls) on an address other than loopback unless true: closed test networks only.',
      ),
    maxConnectionsPerSecond: z
      .number()
      .int()
      .min(1)
      .default(500)
      .describe('New TCP connections accepted per second (token bucket); the rest are closed at once.'),
    connectionBurst: z.number().int().min(1).default(1000).describe('Token bucket size for new connections.'),
    listenBacklog: z
      .number()
      .int()
      .min(16)
      .max(65_535)
      .default(4096)
      .describe(
        "The listening socket's queue of connections the kernel has completed but the gateway not yet taken (the kernel caps it at net.core.somaxconn). Node's default, 511, overflowed in a reconnect storm: the kernel dropped the readers' SYNs and they retried after 1, 3, 7, 15, 31 and 63 s.",
      ),
    maxPacketBytes: z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024)
      .default(300 * 1024)
      .describe('Largest MQTT packet accepted; a larger one closes the connection before it is buffered.'),
    connectTimeoutMs: z.number().int().min(100).default(10_000).describe('Time allowed to send CONNECT.'),
    kdf: KdfSettings.default({ logN: 11, r: 8, p: 1 }),
  })
  .strict();

const External = z
  .object({
    mode: z.literal('external'),
    url: z.string().min(1).describe('Broker URL, e.g. mqtts://broker.example:8883 or mqtt://127.0.0.1:1883.'),
    username: z.string().min(1).describe('The gateway account on the external broker.'),
    password: z.string().min(1),
    clientId: z.string().min(1).max(64).default('visittag-gateway'),
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
    caFile: z.string().optional().describe('CA bundle for mqtts:// when the broker uses a private CA.'),
    allowPlain: z
      .boolean()
      .optional()
      .describe(
        '`run` refuses an mqtt:// (no TLS) broker on another machine unless true: closed test networks only.',
      ),
    sharedGroup: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .optional()
      .describe('MQTT 5 shared-subscription group ($share/<group>/…) for several gateway instances.'),
    dynamicSecurity: z
      .object({ username: z.string().min(1), password: z.string().min(1) })
      .strict()
      .optional()
      .describe(
        "Mosquitto 2 dynamic security: an account allowed on $CONTROL/dynamic-security/#. Provisioning then creates or re-keys the reader's broker account and revocation disables it.",
      ),
  })
  .strict();

export const GatewaySettings = z
  .object({
    version: z.literal(1).default(1).describe('Config file format version.'),
    dataDir: z.string().min(1).describe('Directory holding gateway.db (created if missing).'),
    fleetKey: z
      .string()
      .min(MIN_FLEET_KEY_BYTES)
      .describe(`Fleet pseudonymisation key shared with the readers (≥ ${MIN_FLEET_KEY_BYTES} chars).`),
    retiredFleetKeys: z
      .array(z.string().min(MIN_FLEET_KEY_BYTES))
      .max(4)
      .optional()
      .describe(
        'Fleet keys replaced by `keys rotate`, kept until every reader is provisioned again: taps sealed to them still open (docs/security.md).',
      ),
    mqtt: z.discriminatedUnion('mode', [Embedded, External]).default({
      mode: 'embedded',
      host: '0.0.0.0',
      port: 1883,
      maxConnectionsPerSecond: 500,
      connectionBurst: 1000,
      listenBacklog: 4096,
      maxPacketBytes: 300 * 1024,
      connectTimeoutMs: 10_000,
      kdf: { logN: 11, r: 8, p: 1 },
    }),
    admin: z
      .object({
        host: z.string().min(1).default('127.0.0.1').describe('Admin HTTP address (keep it private).'),
        port: Port.default(8080).describe('Admin HTTP port; 0 picks a free port.'),
        token: z.string().min(16).describe('Bearer token for /api and /metrics (≥ 16 chars).'),
        tls: z
          .object({
            certFile: z.string().min(1).describe('PEM certificate chain file.'),
            keyFile: z.string().min(1).describe('PEM private key file (mode 600).'),
          })
          .strict()
          .optional()
          .describe('Serve the admin API and web app over HTTPS (HSTS, Secure cookies) when set.'),
        oidc: OidcSettings.optional().describe(
          'Single sign-on with OpenID Connect (docs/webapp.md); absent: local accounts and API tokens only.',
        ),
      })
      .strict(),
    backend: z
      .object({
        url: z.string().url().optional().describe('Planning backend webhook URL; absent: no forwarding.'),
        secret: z.string().min(16).default('change-me-change-me').describe('HMAC secret for webhooks.'),
        timeoutMs: z.number().int().min(100).default(10_000),
        batchMax: z.number().int().min(1).max(500).default(100),
        backoff: Backoff.default({ baseMs: 500, capMs: 60_000 }),
      })
      .strict()
      .default({
        secret: 'change-me-change-me',
        timeoutMs: 10_000,
        batchMax: 100,
        backoff: { baseMs: 500, capMs: 60_000 },
      }),
    ingest: z
      .object({
        groupCommitMs: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(10)
          .describe('Longest wait before a group commit (ms).'),
        groupCommitMax: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(200)
          .describe('Messages that trigger a commit at once.'),
      })
      .strict()
      .default({ groupCommitMs: 10, groupCommitMax: 200 }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
    secureCards: z
      .object({
        keyFile: z
          .string()
          .min(1)
          .describe('JSON file with the secure-card master key, mode 0600 (docs/secure-cards.md "Keys").'),
        policy: SecureCardPolicy.default({ uidOnly: 'accept', clone: 'refuse', clients: {} }),
      })
      .strict()
      .optional()
      .describe('Secure cards (NTAG 424 DNA SUN): verify, refuse replays, flag clones. Absent: UID only.'),
    limits: LimitsSettings.optional().describe(
      'Abuse limits: failed-login throttling, reader publish rate, seq-jump bound, reject logging (docs/security.md).',
    ),
    care: z
      .object({
        tickSeconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .optional()
          .describe(
            'How often visit changes are matched and late/missed alerts evaluated (default 30). On PostgreSQL the sweep lease lasts three ticks: after its holder dies, alerts wait at most about four ticks.',
          ),
      })
      .strict()
      .optional()
      .describe('The care plan (docs/plan.md).'),
    retention: RetentionSettings.optional().describe(
      'Retention per data class in days or "keep" (docs/retention.md). Absent: the documented defaults.',
    ),
    store: z
      .discriminatedUnion('engine', [
        z
          .object({
            engine: z.literal('sqlite'),
            visitIndexMaxVisits: z
              .number()
              .int()
              .min(1_000)
              .max(10_000_000)
              .default(50_000)
              .describe(
                'Visits the in-memory index of recent visits holds at most (about 270 bytes each; the "same staff member at two homes" check). Past it the oldest ended visits are dropped and older questions go to SQLite.',
              ),
            writerThread: z
              .boolean()
              .default(false)
              .describe(
                "Run the ingest's group commits and the visits engine in a worker thread with its own connection to gateway.db, so MQTT, logins and acks keep the main thread (a second core). Measured in bench/README.md; a dead thread hands its work back to the main thread.",
              ),
          })
          .strict(),
        z
          .object({
            engine: z.literal('postgres'),
            url: z.string().min(1).describe('postgres://user:password@host:port/database'),
            poolMax: z.number().int().min(1).max(200).default(10).describe('Connections per instance.'),
          })
          .strict(),
      ])
      .optional()
      .describe(
        'Where ingest, visits, outbox, cards, enrollment and fleet live: "sqlite" (default, gateway.db in dataDir) or "postgres" (several instances on one database; what stays in SQLite: gateway/README.md).',
      ),
  })
  .strict();

export type PostgresStoreSettings = Extract<
  NonNullable<z.output<typeof GatewaySettings>['store']>,
  { engine: 'postgres' }
>;

export type GatewaySettings = z.output<typeof GatewaySettings>;
export type GatewaySettingsInput = z.input<typeof GatewaySettings>;
export type EmbeddedMqttSettings = z.output<typeof Embedded>;
export type ExternalMqttSettings = z.output<typeof External>;

/** All problems at once, one line each, naming the field and what to do. */
export function formatConfigErrors(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.length ? i.path.join('.') : '(root)';
      let fix = i.message;
      if (i.code === 'unrecognized_keys') fix = `${i.message}: remove it or check the spelling`;
      if (i.code === 'invalid_type') {
        fix = i.message.endsWith('received undefined')
          ? `is missing: add it (${i.message.replace('Invalid input: ', '')})`
          : `has the wrong type: ${i.message.replace('Invalid input: ', '')}`;
      }
      return `  - ${path}: ${fix}`;
    })
    .join('\n');
}

export type ParsedConfig = { ok: true; config: GatewaySettings } | { ok: false; error: string };

export function parseGatewaySettings(input: unknown): ParsedConfig {
  const r = GatewaySettings.safeParse(input);
  if (!r.success) return { ok: false, error: `invalid gateway config:\n${formatConfigErrors(r.error)}` };
  return { ok: true, config: r.data };
}

/** The config file of a CLI command: `--config`, else $VISITTAG_GATEWAY_CONFIG, else /etc/visittag/gateway.json. */
export function gatewayConfigPath(flag: string | undefined): string {
  return flag ?? process.env.VISITTAG_GATEWAY_CONFIG ?? '/etc/visittag/gateway.json';
}

/** `--ttl-minutes` of the code-issuing commands: default 60; null (after saying why) when not ≥ 1 whole minutes. */
export function ttlMinutesOption(raw: string | undefined, err: (line: string) => void): number | null {
  const ttl = raw === undefined ? 60 : Number(raw);
  if (Number.isInteger(ttl) && ttl >= 1) return ttl;
  err('--ttl-minutes must be a whole number of minutes ≥ 1');
  return null;
}

/** Reads a JSON config file; a relative dataDir / TLS path is resolved against the file's folder. */
export function loadGatewaySettings(file: string): ParsedConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return { ok: false, error: `cannot read config ${file}: ${(err as Error).message}` };
  }
  const parsed = parseGatewaySettings(raw);
  if (!parsed.ok) return parsed;
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const c = parsed.config;
  c.dataDir = abs(c.dataDir);
  if (c.mqtt.mode === 'embedded' && c.mqtt.tls) {
    const t = c.mqtt.tls;
    c.mqtt.tls = {
      certFile: abs(t.certFile),
      keyFile: abs(t.keyFile),
      ...(t.caFile ? { caFile: abs(t.caFile) } : {}),
    };
  }
  if (c.secureCards) c.secureCards.keyFile = abs(c.secureCards.keyFile);
  if (c.admin.tls) c.admin.tls = { certFile: abs(c.admin.tls.certFile), keyFile: abs(c.admin.tls.keyFile) };
  return parsed;
}
