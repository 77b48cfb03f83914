/** The shipped systemd unit, read by the benchmark and the tests so they run what a Pi runs. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export const DEVICE_UNIT_PATH = resolve(
  dirname(import.meta.filename),
  '..',
  'systemd',
  'visittag-device.service',
);

/** The node flags of the unit's ExecStart line (between the node binary and the shim). */
export function unitNodeFlags(unitText = readFileSync(DEVICE_UNIT_PATH, 'utf8')): string[] {
  const line = unitText.split('\n').find((l) => l.startsWith('ExecStart='));
  if (!line) throw new Error('no ExecStart= in the unit');
  const words = line.slice('ExecStart='.length).trim().split(/\s+/);
  const shim = words.findIndex((w) => w.endsWith('/bin/visittag-device.js'));
  if (!words[0]?.endsWith('/node') || shim < 1) throw new Error(`unexpected ExecStart: ${line}`);
  return words.slice(1, shim);
}
