import type { RunOptions } from './run.js';

/** Child-process support for SIGKILL faults (the gateway and the crash/power-loss readers). */
export async function processSupport(): Promise<NonNullable<RunOptions['processes']>> {
  const { startChildGateway, MAIN: GATEWAY_MAIN } = await import('./gateway-child.js');
  const { createChildReader, MAIN: READER_MAIN } = await import('./readers/child.js');
  const { prepareChildEntry } = await import('./child-entry.js');
  // both bundles before the first child starts (simulator/child-entry.ts)
  await Promise.all([prepareChildEntry(GATEWAY_MAIN), prepareChildEntry(READER_MAIN)]);
  return {
    startChildGateway: (o) => startChildGateway(o),
    startChildReader: (o) => createChildReader(o),
  };
}
