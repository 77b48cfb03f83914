#!/usr/bin/env node
// visittag-gateway CLI: a thin launcher that runs gateway/main.ts through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../gateway/main.ts');
process.exit(await main(process.argv.slice(2)));
