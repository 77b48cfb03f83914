/**
 * Several gateway instances under simulation (`--store postgres --instances N`): N child processes of
 * the real composition root for `store.engine: "postgres"` (gateway/pg-instance.ts) on ONE PostgreSQL
 * database, consuming the readers' events from a Mosquitto 2 broker through an MQTT 5 shared
 * subscription, each on the parent's virtual time. The run starts both engines itself, throw-away
 * ones in temp dirs (the test suite's helpers: test/support/pg-cluster.ts, test/support/mosquitto.ts),
 * and destroys them when it stops. The readers' broker accounts are set the way an operator would
 * (Mosquitto's dynamic security); readers are added through instance 0 and every instance takes them
 * from PostgreSQL. A `gateway-kill` fault SIGKILLs one instance, picked by the run's seed.
 */
import pino from 'pino';
import { createDynsecCredentials } from '../gateway/src/broker/dynsec.js';
import { startMosquitto, type MosquittoBroker } from '../test/support/mosquitto.js';
import { startPgCluster, type PgCluster } from '../test/support/pg-cluster.js';
import type { VirtualClock } from './clock.js';
import type { GatewayHost, GatewayHostParams } from './gateway-host.js';
import { createRng } from './prng.js';

/** The gateways' own account on the broker (subscribes to every reader's events, publishes acks). */
const GATEWAY_ACCOUNT = { username: 'visittag-gateway', password: 'sim-gateway-broker-password-0123' };

export interface ClusterOptions {
  params: GatewayHostParams;
  clock: VirtualClock;
  instances: number;
  seed: number;
  startChildGateway: (o: { params: GatewayHostParams; clock: VirtualClock }) => Promise<GatewayHost>;
}

export async function startGatewayCluster(o: ClusterOptions): Promise<GatewayHost> {
  let pgc: PgCluster | null = null;
  let broker: MosquittoBroker | null = null;
  const instances: GatewayHost[] = [];
  const silent = pino({ level: 'silent' });
  const admin = { current: null as ReturnType<typeof createDynsecCredentials> | null };
  const destroyEngines = async () => {
    await admin.current?.stop().catch(() => undefined);
    await broker?.destroy();
    await pgc?.destroy();
  };
  try {
    [pgc, broker] = await Promise.all([startPgCluster({ prefix: 'vt-sim-pg-' }), startMosquitto()]);
    const url = await pgc.createDatabase('visittag_sim');
    // the operator's set-up on the broker: the roles and the gateways' account (docs/scale-out.md)
    const dynsec = createDynsecCredentials({ url: broker.url, ...broker.admin, logger: silent });
    admin.current = dynsec;
    await dynsec.start();
    await dynsec.ensureRoles();
    await dynsec.upsertGateway(GATEWAY_ACCOUNT.username, GATEWAY_ACCOUNT.password);
    const paramsOf = (i: number): GatewayHostParams => ({
      ...o.params,
      dataDir: `${o.params.dataDir}-${i}`,
      scaleOut: { pgUrl: url, brokerUrl: broker!.url, ...GATEWAY_ACCOUNT, clientId: `sim-gateway-${i}` },
    });
    // instance 0 first: it applies the migrations; the others then start together
    instances.push(await o.startChildGateway({ params: paramsOf(0), clock: o.clock }));
    for (const h of await Promise.all(
      Array.from({ length: o.instances - 1 }, (_, k) =>
        o.startChildGateway({ params: paramsOf(k + 1), clock: o.clock }),
      ),
    ))
      instances.push(h);
  } catch (err) {
    await Promise.allSettled(instances.map((h) => h.stop()));
    await destroyEngines();
    throw err;
  }
  const first = instances[0] as GatewayHost;
  const brokerPort = broker.port;
  const rng = createRng(o.seed ^ 0x5ca1e);
  const alive = () => instances.filter((h) => h.alive);
  /** The first instance that is up (the admin API of any instance serves the shared tables). */
  const anyAlive = (): GatewayHost => {
    const up = alive()[0];
    if (!up) throw new Error('no gateway instance is up');
    return up;
  };
  const syncAll = async () => {
    for (const h of alive()) await h.syncReaders?.();
  };

  return {
    /** The readers connect to the broker (through their fault proxies). */
    get mqttPort() {
      return brokerPort;
    },
    get adminUrl() {
      return first.adminUrl;
    },
    /** Every instance is up (false while one is killed). */
    get alive() {
      return instances.every((h) => h.alive);
    },
    async addReader(r) {
      await admin.current?.upsertReader(r.readerId, r.password);
      await first.addReader(r);
      await syncAll(); // instance 0 writes it to PostgreSQL, the others take it now rather than in 5 s
    },
    addCard: (c) => first.addCard(c),
    async api<T>(path: string): Promise<T> {
      const h = anyAlive();
      // the reader pages show a copy of PostgreSQL's sequence state refreshed every 5 s: refresh it now
      if (path.startsWith('/api/readers')) await h.syncReaders?.();
      return h.api<T>(path);
    },
    tick(now) {
      const acks = instances.map((h) => h.tick(now)).filter((a) => a !== undefined);
      return acks.length ? Promise.all(acks).then(() => undefined) : undefined;
    },
    async kill() {
      const up = alive();
      const victim = up[Math.floor(rng.next() * up.length)];
      await victim?.kill?.();
    },
    async restart() {
      for (const h of instances) if (!h.alive) await h.restart?.();
    },
    syncReaders: syncAll,
    async stop() {
      await Promise.allSettled(instances.map((h) => h.stop()));
      await destroyEngines();
    },
  };
}
