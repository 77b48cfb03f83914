/**
 * Ad-hoc measurement (not a test): the heap the visits engine keeps as visits accumulate, the soak row's
 * shape (each reader taps its own staff card, start/stop alternating, `gapS` seconds apart), processed in
 * rounds; after each round the heap after a GC and the in-memory visit index's size.
 *   node --expose-gc --import tsx test/scale/measure-visit-index-memory.ts [readers] [rounds] [tapsPerRound] [gapS]
 */
import type { TapEvent } from '../../protocol/index.js';
import { addReader, card, createEnv, FakeClock, ingestBatch, T0, tap } from '../gateway-visits/helpers.js';

const [readers = 2000, rounds = 10, perRound = 10, gapS = 10] = process.argv.slice(2).map(Number);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const MB = 1024 * 1024;
const clock = new FakeClock(T0);
const env = createEnv({ fakeClock: clock, verifyVisitIndex: false });
for (let r = 0; r < readers; r++) {
  addReader(env.db, `r${r}`, `home-${r}`);
  env.pipeline.registry.addCard({ cardRef: card(r + 1), staffRef: `s${r}` });
}
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / MB;
};
const h0 = heap();
let seq = 0;
console.log('round  taps     visits   heapMB  Δ/100k taps  index staff/card visits');
for (let round = 1; round <= rounds; round++) {
  for (let r = 0; r < readers; r++) {
    const events: TapEvent[] = [];
    for (let i = 1; i <= perRound; i++) {
      const s = seq + i;
      events.push(
        tap(`r${r}`, s, {
          card: card(r + 1),
          decision: s % 2 ? 'start' : 'stop',
          visitId: `v${r}-${Math.ceil(s / 2)}`,
          time: { wallMs: T0 + s * gapS * 1000 },
        }),
      );
    }
    ingestBatch(env.db, { readerId: `r${r}`, events });
  }
  seq += perRound;
  clock.advance(T0 + seq * gapS * 1000 - clock.now());
  env.pipeline.processNow();
  const taps = seq * readers;
  const h = heap();
  const sz = env.pipeline.visitWriter.repo.index.size();
  console.log(
    `${String(round).padStart(5)}  ${String(taps).padStart(7)}  ${String(taps / 2).padStart(7)}  ${h.toFixed(1).padStart(6)}  ${(((h - h0) / taps) * 100_000).toFixed(2).padStart(11)}  ${sz.staffVisits}/${sz.cardVisits}`,
  );
}
await env.close();
