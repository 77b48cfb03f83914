/**
 * The gateway's and the device's programs as the tests start them in child processes: `node <bundle> …`,
 * one esbuild bundle of gateway/main.ts and of device/main.ts per test process (simulator/child-entry.ts),
 * instead of `node --import tsx <main.ts> …` each time: a CLI start through tsx costs about 3 s of CPU on a
 * 2-core machine, from the bundle about half, and the provisioning and lifecycle files start dozens. Same
 * code, same arguments and exit codes; bin/visittag-*.js (the launchers) keep their own tests.
 */
import { resolve } from 'node:path';
import { childArgv, prepareChildEntry } from '../../simulator/child-entry.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const GATEWAY_MAIN = resolve(ROOT, 'gateway', 'main.ts');
export const DEVICE_MAIN = resolve(ROOT, 'device', 'main.ts');

await Promise.all([prepareChildEntry(GATEWAY_MAIN), prepareChildEntry(DEVICE_MAIN)]);

/** node's arguments before the program's own: `visittag-gateway …`. */
export const gatewayArgv = (): string[] => childArgv(GATEWAY_MAIN);
/** node's arguments before the program's own: `visittag-device …`. */
export const deviceArgv = (): string[] => childArgv(DEVICE_MAIN);
