/**
 * How the simulator starts its child processes (the gateway and the crash/power-loss readers, which a fault
 * SIGKILLs and starts again, dozens of times in a chaos run). From TypeScript through tsx a child costs about
 * 3 s of CPU to start on a 2-core machine (tsx's loader, then every module through it); from one esbuild bundle
 * of the same entry with the npm packages in it too about 0.6 s (`visittag-gateway --help`, alternating at load
 * 7-8: 0.83 s with the packages left to node_modules, where Node resolves and reads some hundreds of files).
 * Native and hardware packages stay out of the bundle (CHILD_EXTERNALS) and load from node_modules as usual.
 * The bundle is built once per process, in a temp dir beside a link to this checkout's node_modules, and
 * removed at exit. Until it is ready, or if it cannot be built, children start through tsx as before: the same
 * code either way.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { build as EsbuildBuild } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Packages a child bundle leaves to node_modules: native addons and hardware I/O (their .node files and
 * bindings are found relative to the package), the bundler itself, and exceljs (loaded on the first workbook
 * only: gateway/src/reports/export.ts).
 */
export const CHILD_EXTERNALS = [
  'better-sqlite3',
  'nfc-pcsc',
  '@pokusew/pcsclite',
  'johnny-five',
  'raspi-io',
  'serialport',
  'mock-firmata',
  'pg-native',
  'esbuild',
  'tsx',
  'exceljs',
];
const bundles = new Map<string, string>();
const building = new Map<string, Promise<void>>();
let dir: string | null = null;

/** The node arguments that start `entry` (a .ts file): its bundle once built, else through tsx. */
export function childArgv(entry: string): string[] {
  const file = bundles.get(entry);
  return file ? [file] : ['--import', 'tsx', entry];
}

/** Builds the bundle of `entry` (once per process); never rejects: a failed build keeps tsx. */
export function prepareChildEntry(entry: string): Promise<void> {
  let p = building.get(entry);
  if (!p) {
    p = bundle(entry).then(
      (file) => void bundles.set(entry, file),
      () => undefined,
    );
    building.set(entry, p);
  }
  return p;
}

/**
 * The bundle of `entry` as a file (built once per process, shared by every caller, removed at exit), for a test
 * that must run the bundle itself; rejects if it cannot be built.
 */
export async function childBundle(entry: string): Promise<string> {
  await prepareChildEntry(entry);
  const file = bundles.get(entry);
  if (file) return file;
  return bundle(entry); // the first build failed: again, to reject with its error
}

async function bundle(entry: string): Promise<string> {
  const { build } = await import('esbuild');
  if (dir === null) {
    const d = mkdtempSync(join(tmpdir(), 'vt-sim-children-'));
    symlinkSync(join(ROOT, 'node_modules'), join(d, 'node_modules'), 'dir');
    writeFileSync(join(d, 'package.json'), '{ "type": "module" }\n'); // the worker bundles are .js ES modules
    process.once('exit', () => rmSync(d, { recursive: true, force: true }));
    dir = d;
  }
  // gateway/main.ts and device/main.ts share a base name: the path's hash keeps their bundles apart
  const tag = createHash('sha256').update(entry).digest('hex').slice(0, 8);
  const file = join(dir, `${basename(entry, '.ts')}-${tag}.mjs`);
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: CHILD_EXTERNALS,
    outfile: file,
    logLevel: 'silent',
    // CommonJS packages inside an ES module bundle still call require() for Node's built-ins
    banner: {
      js: "import { createRequire as __vtRequire } from 'node:module'; const require = __vtRequire(import.meta.url);",
    },
  });
  await bundleWorkers(dir, build);
  return file;
}

/**
 * The gateway's worker threads load their entry beside the module that starts them (`./engine-worker.js`,
 * `./worker.js` next to `import.meta.url`); in a bundle that is the bundle's folder, so each worker entry is
 * bundled there too under that name (once per folder).
 */
const WORKER_ENTRIES: ReadonlyArray<{ src: string; name: string }> = [
  { src: 'gateway/src/visits/engine-worker.ts', name: 'engine-worker.js' },
  { src: 'gateway/src/reports/worker.ts', name: 'worker.js' },
];
let workersBuilt: Promise<void> | null = null;
function bundleWorkers(d: string, build: typeof EsbuildBuild): Promise<void> {
  workersBuilt ??= Promise.all(
    WORKER_ENTRIES.map((w) =>
      build({
        entryPoints: [join(ROOT, w.src)],
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        external: CHILD_EXTERNALS,
        outfile: join(d, w.name),
        logLevel: 'silent',
        banner: {
          js: "import { createRequire as __vtRequire } from 'node:module'; const require = __vtRequire(import.meta.url);",
        },
      }),
    ),
  ).then(() => undefined);
  return workersBuilt;
}
