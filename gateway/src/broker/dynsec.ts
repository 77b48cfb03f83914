import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import type pino from 'pino';
import {
  DEVICE_PUBLISH_LEAVES,
  DEVICE_SUBSCRIBE_LEAVES,
  readerTopic,
  topics,
  type TopicLeaf,
} from '../../../protocol/index.js';

/**
 * Reader credentials on an external Mosquitto 2 broker, through its dynamic security plugin: commands
 * published on `$CONTROL/dynamic-security/v1`, answers read from `.../response` (correlated by id).
 *
 * - `ensureRoles()` creates (or completes) the role `visittag-gateway`, which lets the gateway read every
 *   reader's events/status/command-results (also through `$share/...` shared subscriptions) and write
 *   acks/config/commands.
 * - `upsertReader(id, password)` (enrolment, re-enrolment, replacement) creates the reader's own role
 *   `visittag-reader-<id>` (publish and subscribe in its own subtree only: Mosquitto 2.0's plugin has no
 *   `%u` substitution in ACLs, checked on 2.0.11) and the client with that role, or sets the password,
 *   role and enables the client when it exists. Mosquitto kicks a client whose password changes, so a
 *   session still logged in with the old password is dropped.
 * - `disableReader(id)` (revocation) disables the client: Mosquitto drops its live connection at once
 *   and refuses its next CONNECT; `enableReader` undoes it.
 *
 * The account used here needs the plugin's admin rights on `$CONTROL/dynamic-security/#` (the account
 * `mosquitto_ctrl dynsec init` creates has them). EMQX and other brokers: docs/scale-out.md.
 */
export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
/** Each reader gets its own role (no `%u` in Mosquitto 2.0's dynamic security ACLs). */
export const readerRole = (readerId: string): string => `visittag-reader-${readerId}`;
export const GATEWAY_ROLE = 'visittag-gateway';

export interface DynsecCommand {
  command: string;
  [key: string]: unknown;
}

export interface DynsecResponse {
  command: string;
  error?: string;
  data?: unknown;
  correlationData?: string;
}

export class DynsecError extends Error {
  constructor(
    readonly command: string,
    readonly brokerError: string,
  ) {
    super(`dynamic security ${command} failed: ${brokerError}`);
  }
}

export interface DynsecOptions {
  url: string;
  username: string;
  password: string;
  clientId?: string;
  logger: pino.Logger;
  /** Per command (default 5 s). */
  timeoutMs?: number;
}

export interface BrokerCredentials {
  start(): Promise<void>;
  stop(): Promise<void>;
  ensureRoles(): Promise<void>;
  upsertReader(readerId: string, password: string): Promise<void>;
  disableReader(readerId: string): Promise<void>;
  enableReader(readerId: string): Promise<void>;
  /** Sets up the gateway's own broker account (used by tests and by `docs/scale-out.md`'s setup). */
  upsertGateway(username: string, password: string): Promise<void>;
  /** Raw commands (one round trip); errors are returned, not thrown. */
  send(commands: DynsecCommand[]): Promise<DynsecResponse[]>;
}

const acl = (acltype: string, topic: string, allow = true, priority = 0) => ({
  acltype,
  topic,
  allow,
  priority,
});

/** A reader role's ACLs: its own subtree only. */
export function readerRoleAcls(readerId: string): Array<ReturnType<typeof acl>> {
  const t = (leaf: TopicLeaf) => readerTopic(readerId, leaf);
  return [
    ...DEVICE_PUBLISH_LEAVES.map((leaf) => acl('publishClientSend', t(leaf))),
    ...DEVICE_SUBSCRIBE_LEAVES.map((leaf) => acl('subscribeLiteral', t(leaf))),
    ...DEVICE_SUBSCRIBE_LEAVES.map((leaf) => acl('publishClientReceive', t(leaf))),
  ];
}

/** The gateway role's ACLs: every reader's device-published leaves in, gateway leaves out. */
export function gatewayRoleAcls(): Array<ReturnType<typeof acl>> {
  return [
    ...DEVICE_PUBLISH_LEAVES.flatMap((leaf) => [
      acl('subscribePattern', topics.allReaders(leaf)),
      // Mosquitto 2.0 checks a shared subscription against its whole filter, `$share/<group>/` included
      acl('subscribePattern', `$share/+/${topics.allReaders(leaf)}`),
      acl('publishClientReceive', topics.allReaders(leaf)),
    ]),
    ...DEVICE_SUBSCRIBE_LEAVES.map((leaf) => acl('publishClientSend', topics.allReaders(leaf))),
  ];
}

const ALREADY = /already exists/i;

export function createDynsecCredentials(opts: DynsecOptions): BrokerCredentials {
  const log = opts.logger.child({ module: 'broker-dynsec' });
  const timeoutMs = opts.timeoutMs ?? 5000;
  let client: MqttClient | null = null;
  const pending = new Map<
    string,
    { resolve: (r: DynsecResponse[]) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();

  const onMessage = (_topic: string, payload: Buffer): void => {
    let parsed: { responses?: DynsecResponse[] };
    try {
      parsed = JSON.parse(payload.toString('utf8')) as { responses?: DynsecResponse[] };
    } catch {
      log.warn('unparseable dynamic security response');
      return;
    }
    const responses = parsed.responses ?? [];
    const id = responses.find((r) => r.correlationData)?.correlationData?.split(':')[0];
    const p = id ? pending.get(id) : undefined;
    if (!id || !p) return;
    pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(responses);
  };

  const send = async (commands: DynsecCommand[]): Promise<DynsecResponse[]> => {
    const c = client;
    if (!c) throw new Error('dynamic security client is not started');
    const id = randomUUID();
    const body = { commands: commands.map((cmd, i) => ({ ...cmd, correlationData: `${id}:${i}` })) };
    const answer = new Promise<DynsecResponse[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(
          new Error(
            `no dynamic security answer within ${timeoutMs} ms (is the plugin loaded and may ${opts.username} use $CONTROL/dynamic-security/#?)`,
          ),
        );
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer });
    });
    await c.publishAsync(DYNSEC_TOPIC, JSON.stringify(body), { qos: 1 });
    return answer;
  };

  /** Sends commands, throwing on any error that `tolerate` does not accept. */
  const run = async (commands: DynsecCommand[], tolerate: RegExp | null = null): Promise<void> => {
    const res = await send(commands);
    for (const r of res) {
      if (r.error && !(tolerate && tolerate.test(r.error))) throw new DynsecError(r.command, r.error);
    }
  };

  const ensureRole = async (rolename: string, acls: Array<ReturnType<typeof acl>>): Promise<void> => {
    await run([{ command: 'createRole', rolename }], ALREADY);
    await run(
      acls.map((a) => ({ command: 'addRoleACL', rolename, ...a })),
      ALREADY,
    );
  };

  /**
   * Creates the client with `rolename` or, when it exists, sets its password and role and enables it (one round trip in the common case). `prelude` runs first in the same message.
   */
  const upsertClient = async (
    username: string,
    password: string,
    rolename: string,
    prelude: DynsecCommand[] = [],
  ): Promise<void> => {
    const res = await send([
      ...prelude,
      { command: 'createClient', username, password, roles: [{ rolename, priority: 0 }] },
    ]);
    for (const r of res.slice(0, prelude.length)) {
      if (r.error && !ALREADY.test(r.error)) throw new DynsecError(r.command, r.error);
    }
    const err = res[prelude.length]?.error;
    if (!err) return;
    if (!ALREADY.test(err)) throw new DynsecError('createClient', err);
    // modifyClient replaces password and roles in one step (addClientRole on a role the client
    // already has answers "Internal error" on 2.0.11); Mosquitto kicks the client on the change.
    await run([
      { command: 'modifyClient', username, password, roles: [{ rolename, priority: 0 }] },
      { command: 'enableClient', username },
    ]);
  };

  return {
    async start() {
      const { default: mqtt } = await import('mqtt');
      const c = await mqtt.connectAsync(opts.url, {
        clientId: opts.clientId ?? `visittag-dynsec-${randomUUID().slice(0, 8)}`,
        username: opts.username,
        password: opts.password,
        protocolVersion: 5,
        clean: true,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
      });
      c.on('message', onMessage);
      c.on('error', (err) => log.warn({ err: err.message }, 'dynamic security client error'));
      // subscribe again after every reconnect (clean session)
      c.on('connect', () => {
        c.subscribe(`${DYNSEC_TOPIC}/response`, { qos: 1 });
      });
      await c.subscribeAsync(`${DYNSEC_TOPIC}/response`, { qos: 1 });
      client = c;
    },
    async stop() {
      const c = client;
      client = null;
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new Error('dynamic security client stopped'));
        pending.delete(id);
      }
      if (c) await c.endAsync();
    },
    async ensureRoles() {
      await ensureRole(GATEWAY_ROLE, gatewayRoleAcls());
    },
    async upsertReader(readerId, password) {
      const rolename = readerRole(readerId);
      await upsertClient(readerId, password, rolename, [
        { command: 'createRole', rolename },
        ...readerRoleAcls(readerId).map((a) => ({ command: 'addRoleACL', rolename, ...a })),
      ]);
      log.info({ readerId }, 'reader credential set on the broker');
    },
    async disableReader(readerId) {
      await run([{ command: 'disableClient', username: readerId }]);
      log.info({ readerId }, 'reader disabled on the broker (its connection is dropped)');
    },
    async enableReader(readerId) {
      await run([{ command: 'enableClient', username: readerId }]);
    },
    async upsertGateway(username, password) {
      await upsertClient(username, password, GATEWAY_ROLE);
    },
    send,
  };
}
