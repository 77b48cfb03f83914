/** Runs the care plan's import/re-import measurement (bench/rows/care-bench.ts) in its own process. */
import { serve } from '../lib/serve.js';
import { benchCarePlan } from '../rows/care-bench.js';

serve({
  plan: (a: { clients: number; days: number }) => benchCarePlan(a.clients, a.days),
});
