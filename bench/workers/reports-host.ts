/** Runs the report bench measurements (bench/lib/report-bench.ts) in their own process. */
import { benchContinuity, benchExecuted } from '../lib/report-bench.js';
import { serve } from '../lib/serve.js';

serve({
  executed: (a: { clients: number; days: number }) => benchExecuted(a.clients, a.days),
  continuity: (a: { clients: number }) => benchContinuity(a.clients),
});
