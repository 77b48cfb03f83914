#!/usr/bin/env node
// visittag-device shim: runs the bundle when built (npm run build:device → dist/bundle/device/, what a
// Pi should run: least memory), else the tsc build (dist/device/), else the TypeScript through tsx.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'bundle', 'device', 'main.mjs');
const built = join(root, 'dist', 'device', 'main.js');
if (existsSync(bundle)) {
  await import(pathToFileURL(bundle).href);
} else if (existsSync(built)) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'device', 'main.ts')).href);
}
