/** Shared set-ups: a gateway in its own process, and a fleet of load-generator processes. */
import type { WorkerHandle } from './child.js';
import { benchCards } from './taps.js';
import { FLEET_KEY, gatewaySettings, type RowContext } from './ctx.js';

export interface BenchGateway {
  worker: WorkerHandle;
  mqttPort: number;
  url: string;
}

export async function startGateway(
  ctx: RowContext,
  opts: {
    name: string;
    dataDir: string;
    mqttPort?: number;
    backendUrl?: string;
    nodeFlags?: string[];
    /** Top-level config sections laid over the bench's (e.g. `store`). */
    settings?: Record<string, unknown>;
  },
): Promise<BenchGateway> {
  const worker = await ctx.worker(opts.name, 'gateway-host', opts.nodeFlags ?? ['--expose-gc']);
  const settings = gatewaySettings({
    dataDir: opts.dataDir,
    ...(opts.mqttPort !== undefined ? { mqttPort: opts.mqttPort } : {}),
    ...(opts.backendUrl ? { backendUrl: opts.backendUrl } : {}),
  });
  const r = await worker.call<{ mqttPort: number }>(
    'start',
    { settings: { ...settings, ...opts.settings } },
    60_000,
  );
  return { worker, mqttPort: r.mqttPort, url: `mqtt://127.0.0.1:${r.mqttPort}` };
}

/** Staff cards for a fleet: one per reader, capped (each `addCard` is its own durable commit). */
export const cardsFor = (readers: number): number => Math.max(1, Math.min(readers, MAX_CARDS));
const MAX_CARDS = 5_000;

export async function provision(
  gw: BenchGateway,
  readers: { readerId: string; password: string; clientRef: string }[],
  staff: number = cardsFor(readers.length),
): Promise<void> {
  for (let i = 0; i < readers.length; i += 2000) {
    await gw.worker.call('addReaders', { readers: readers.slice(i, i + 2000), concurrency: 8 }, 600_000);
  }
  const cards = benchCards(staff, FLEET_KEY).map((c, i) => ({
    cardRef: c.cardRef,
    staffRef: `staff-${i + 1}`,
  }));
  await gw.worker.call('addCards', { cards });
}

/** Load-generator processes, each driving a slice of the readers. */
export class Fleet {
  private constructor(readonly workers: WorkerHandle[]) {}

  static async start(
    ctx: RowContext,
    opts: {
      name: string;
      url: string;
      readers: { readerId: string; password?: string }[];
      batchSize: number;
      appAcks: boolean;
      staff?: number;
      perProcess?: number;
      backoff?: { baseMs: number; capMs: number };
      /** Reuse these load-generator processes (one slice each) instead of starting new ones. */
      reuse?: WorkerHandle[];
    },
  ): Promise<Fleet> {
    const n = opts.reuse?.length ?? Math.max(1, Math.ceil(opts.readers.length / (opts.perProcess ?? 2500)));
    const per = Math.ceil(opts.readers.length / n);
    // Each reader taps its own staff card (start, stop, start, …): no card is open at two homes at once,
    // as in real life (a card shared by two readers, when there are more readers than cards, closes its
    // visit within each batch of an even size).
    const cardRefs = benchCards(opts.staff ?? cardsFor(opts.readers.length), FLEET_KEY).map((c) => c.cardRef);
    const readers = opts.readers.map((r, i) => ({ ...r, cardRef: cardRefs[i % cardRefs.length] as string }));
    const workers =
      opts.reuse ??
      (await Promise.all(
        Array.from({ length: n }, (_, i) => ctx.worker(`${opts.name}${n > 1 ? `-${i + 1}` : ''}`, 'loadgen')),
      ));
    await Promise.all(
      workers.map((w, i) =>
        w.call('setup', {
          url: opts.url,
          readers: readers.slice(i * per, (i + 1) * per),
          cardRefs,
          batchSize: opts.batchSize,
          appAcks: opts.appAcks,
          backoff: opts.backoff ?? { baseMs: 250, capMs: 5_000 },
          seed: 1000 + i,
        }),
      ),
    );
    return new Fleet(workers);
  }

  all<T>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T[]> {
    return Promise.all(this.workers.map((w) => w.call<T>(cmd, args, timeoutMs)));
  }
}

export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
