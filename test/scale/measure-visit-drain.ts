/**
 * Ad-hoc measurement (not a test): the visits pipeline's drain turn as it runs at one tap per message:
 * R readers each commit one tap per round (start, then stop, alternating), the pipeline is told as the
 * ingest tells it (onCommitted with the events in memory), and one drain turn processes them. Prints the
 * main thread's CPU per tap over the rounds after a warm-up.
 *   npx tsx test/scale/measure-visit-drain.ts [readers] [rounds]
 */
import type { TapEvent } from '../../protocol/index.js';
import { addReader, card, createEnv, FakeClock, ingestBatch, T0, tap } from '../gateway-visits/helpers.js';

const readers = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 60);

const env = createEnv({ fakeClock: new FakeClock(T0 + rounds * 60_000), verifyVisitIndex: false });
for (let r = 0; r < readers; r++) {
  addReader(env.db, `r${r}`, `home-${r}`);
  env.pipeline.registry.addCard({ cardRef: card(r + 1), staffRef: `s${r}` });
}
await env.pipeline.start();
const turn = () => new Promise<void>((res) => setImmediate(() => setImmediate(res)));
let cpu = 0;
let taps = 0;
for (let s = 1; s <= rounds; s++) {
  const committed: Array<{ readerId: string; events: TapEvent[]; conflicts: number[] }> = [];
  for (let r = 0; r < readers; r++) {
    const ev = tap(`r${r}`, s, {
      card: card(r + 1),
      decision: s % 2 ? 'start' : 'stop',
      visitId: `v${r}-${Math.ceil(s / 2)}`,
      time: { wallMs: T0 + s * 60_000 },
    });
    ingestBatch(env.db, { readerId: `r${r}`, events: [ev] });
    committed.push({ readerId: `r${r}`, events: [ev], conflicts: [] });
  }
  const c0 = process.cpuUsage();
  env.pipeline.onCommitted(
    committed.map((c) => c.readerId),
    committed,
  );
  await turn();
  const c = process.cpuUsage(c0);
  if (s > rounds / 4) {
    cpu += c.user + c.system;
    taps += readers;
  }
  if (env.pipeline.backlog() !== 0) throw new Error(`round ${s}: backlog ${env.pipeline.backlog()}`);
}
const n = env.db.prepare('SELECT COUNT(*) FROM outbox').pluck().get() as number;
console.log(
  `${readers} readers × ${rounds} rounds: ${(cpu / taps).toFixed(1)} µs CPU per tap (drain only); outbox ${n}`,
);
await env.close();
