import type { RunOptions } from './run.js';

/** Child-process support for SIGKILL faults (the gateway and the crash/power-loss readers). */
export async function processSupport(): Promise<NonNullable<RunOptions['processes']>> {
  const { startChildGateway } = await import('./gateway-child.js');
  const { createChildReader } = await import('./readers/child.js');
  return {
    startChildGateway: (o) => startChildGateway(o),
    startChildReader: (o) => createChildReader(o),
  };
}
