/**
 * Bundles the device firmware (device/main.ts and what it imports, npm packages included) into a few
 * ES modules under dist/bundle/device/, which bin/visittag-device.js prefers. What a Pi runs then
 * loads one module graph of ~1 MB instead of hundreds of files: 14 MB less RSS idle (measured by
 * `npm run bench -- --only=device-rss`). Native and hardware packages stay external and load from
 * node_modules at run time; lazily imported parts (mqtt, drivers, provision, selftest) stay lazy
 * chunks. Minified (0.5 MB less RSS than keeping names); the source map beside it turns a logged stack
 * back into source lines (`node --enable-source-maps`, or any source-map tool on the .map files).
 *
 *   npx tsx device/scripts/bundle.ts [outDir]     (npm run build:device)
 */
import { rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';

const ROOT = resolve(dirname(import.meta.filename), '..', '..');

/** Packages with native code or hardware access, resolved from node_modules at run time. */
export const DEVICE_EXTERNALS = [
  'better-sqlite3',
  'nfc-pcsc',
  '@pokusew/pcsclite',
  'johnny-five',
  'raspi-io',
  'serialport',
  'mock-firmata',
] as const;

/**
 * MQTT.js requires the `socks` package (and `ip-address`) for SOCKS proxies, which the device config
 * cannot ask for: the bundle gets a stub that says so, and 0.5 MB less live heap.
 */
const noSocksProxy: Plugin = {
  name: 'visittag-no-socks-proxy',
  setup(b) {
    b.onResolve({ filter: /^socks$/ }, () => ({ path: 'socks', namespace: 'visittag-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'visittag-stub' }, () => ({
      contents:
        'class SocksClient { constructor() { throw new Error(' +
        "'SOCKS proxies are not supported by the device firmware bundle'); } }\n" +
        'module.exports = { SocksClient };',
      loader: 'js',
    }));
  },
};

export async function bundleDevice(outDir = resolve(ROOT, 'dist', 'bundle', 'device')): Promise<string> {
  rmSync(outDir, { recursive: true, force: true });
  await build({
    entryPoints: [resolve(ROOT, 'device', 'main.ts')],
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outExtension: { '.js': '.mjs' },
    external: [...DEVICE_EXTERNALS],
    minify: true,
    sourcemap: 'linked',
    plugins: [noSocksProxy],
    legalComments: 'linked',
    logLevel: 'warning',
    // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
    banner: {
      js: "import { createRequire as __vtRequire } from 'node:module'; const require = __vtRequire(import.meta.url);",
    },
  });
  return resolve(outDir, 'main.mjs');
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  const out = await bundleDevice(process.argv[2] ? resolve(process.argv[2]) : undefined);
  process.stdout.write(`device bundle: ${out}\n`);
}
