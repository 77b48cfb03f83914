/**
 * Child-process entry of the gateway under simulation (node --import tsx): the real createGateway()
 * (or createPgGateway(), one of several instances on PostgreSQL) on a virtual clock the parent drives
 * over IPC, so the parent can SIGKILL and restart it.
 */
import pino from 'pino';
import { GatewaySettingsSchema, createGateway } from '../gateway/index.js';
import { createPgGateway } from '../gateway/pg-instance.js';
import { VirtualClock } from './clock.js';
import { gatewaySettingsInput, type GatewayHostParams } from './gateway-host.js';
import type { ChildMessage, ParentMessage } from './ipc.js';
import { createRng } from './prng.js';

const args = JSON.parse(process.env.VISITTAG_SIM_GATEWAY ?? '{}') as {
  params: GatewayHostParams;
  nowMs: number;
  seed: number;
};
const toParent = (m: ChildMessage) => process.send?.(m);
const clock = new VirtualClock({ startMs: args.nowMs });
const rng = createRng(args.seed);
const options = {
  config: GatewaySettingsSchema.parse(gatewaySettingsInput(args.params)),
  clock,
  random: () => rng.next(),
  logger: pino({ level: 'silent' }),
};
// one of several instances on PostgreSQL (--store postgres --instances N), or the embedded default
const gw = options.config.store?.engine === 'postgres' ? createPgGateway(options) : createGateway(options);

// IPC delivers several messages in one turn: queue them so they apply in order.
let queue: Promise<void> = Promise.resolve();
process.on('message', (m: ParentMessage) => {
  queue = queue.then(() => handle(m));
});

async function handle(m: ParentMessage): Promise<void> {
  switch (m.type) {
    case 'tick':
      await clock.advanceTo(m.now);
      break;
    case 'call': {
      const run = async (): Promise<unknown> => {
        if (m.op === 'tick') {
          await clock.advanceTo(m.args as number);
          return null;
        }
        if (m.op === 'addReader') {
          await gw.registry.addReader(m.args as { readerId: string; password: string; clientRef: string });
          return null;
        }
        if (m.op === 'addCard') {
          await gw.registry.addCard(m.args as { cardRef: string; staffRef: string });
          return null;
        }
        if (m.op === 'syncReaders') {
          if ('syncReaders' in gw) await gw.syncReaders();
          return null;
        }
        throw new Error(`unknown op ${m.op}`);
      };
      run().then(
        (value) => toParent({ type: 'result', id: m.id, ok: true, value }),
        (err: unknown) => toParent({ type: 'result', id: m.id, ok: false, error: (err as Error).message }),
      );
      break;
    }
    case 'stop':
      void gw.stop().finally(() => {
        toParent({ type: 'result', id: m.id, ok: true });
        process.exit(0);
      });
      break;
    case 'act':
    case 'arm-mid-write':
    case 'arm-after-feedback':
    case 'sync':
      break;
  }
}
process.on('disconnect', () => process.exit(0));

await gw.start();
toParent({ type: 'ready', mqttPort: gw.mqttPort ?? 0, adminUrl: gw.adminUrl });
