/** Runs the web app's size measurement (bench/lib/web-bench.ts) in its own process. */
import { serve } from '../lib/serve.js';
import { benchWeb } from '../lib/web-bench.js';

serve({
  web: (a: { readers: number; visits: number }) => benchWeb(a.readers, a.visits),
});
