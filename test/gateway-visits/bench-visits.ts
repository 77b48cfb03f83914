/**
 * Throughput of the visit engine and the forwarder (a measurement, not a test):
 *   npx tsx test/gateway-visits/bench-visits.ts [readers] [visitsPerReader]
 * Engine: events/s turned into visits + outbox rows (one transaction per reader chunk, synchronous=FULL).
 * Forwarder: events/s delivered to the simulator's fake backend over real HTTP (batchMax 100).
 */
import { systemClock } from '../../protocol/index.js';
import { startFakeBackend } from '../../simulator/fake-backend.js';
import { addReader, card, createEnv, ingestBatch, tap } from './helpers.js';

const readers = Number(process.argv[2] ?? 200);
const perReader = Number(process.argv[3] ?? 50);
const secret = 'bench-secret-0123456789';
const backend = await startFakeBackend({ secret });
const env = createEnv({
  clock: systemClock,
  backend: {
    url: backend.url,
    secret,
    timeoutMs: 10_000,
    batchMax: 100,
    backoff: { baseMs: 50, capMs: 1000 },
  },
});
for (let r = 0; r < readers; r++) {
  const id = `r${r}`;
  addReader(env.db, id, `client-${r}`);
  env.pipeline.registry.addCard({ cardRef: card(r + 1), staffRef: `staff-${r}` });
  const events = [];
  for (let v = 0; v < perReader; v++) {
    events.push(tap(id, 2 * v + 1, { card: card(r + 1), decision: 'start', visitId: `${id}-v${v}` }));
    events.push(tap(id, 2 * v + 2, { card: card(r + 1), decision: 'stop', visitId: `${id}-v${v}` }));
  }
  for (let i = 0; i < events.length; i += 200)
    ingestBatch(env.db, { readerId: id, events: events.slice(i, i + 200) });
}
const total = readers * perReader * 2;
let t0 = performance.now();
const processed = env.pipeline.processNow();
const engineMs = performance.now() - t0;
console.log(
  `engine: ${processed} events in ${engineMs.toFixed(0)} ms = ${Math.round((processed / engineMs) * 1000)} events/s`,
);
t0 = performance.now();
await env.pipeline.start();
for (let i = 0; i < 600_000 && backend.received().length < total; i++)
  await new Promise((r) => setTimeout(r, 5));
const fwdMs = performance.now() - t0;
console.log(
  `forwarder: ${backend.received().length}/${total} events in ${fwdMs.toFixed(0)} ms = ${Math.round((backend.received().length / fwdMs) * 1000)} events/s; duplicates ${backend.duplicates}, conflicts ${backend.conflicts}`,
);
await env.close();
await backend.close();
