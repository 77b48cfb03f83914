/**
 * visittag benchmark suite: `npm run bench` (full) or `npm run bench -- --quick` (< 5 min).
 * Prints ONE table to stdout and writes it as JSON under bench/results/. Loopback only; every worker
 * (gateway, device, load generators, baseline subscribers, Mosquitto) runs in its own process, killed at
 * the end of its row. Options: --quick | --smoke, --only=<section,…>, --out=<dir>.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { killAllWorkers } from './lib/child.js';
import { ROOT, RowContext } from './lib/ctx.js';
import { renderTable, writeResults } from './lib/table.js';
import { naRow, PROFILES, type Profile, type ProfileName, type Row } from './lib/types.js';
import { SECTIONS, type Section } from './sections.js';

export interface RunOptions {
  profile: ProfileName;
  only?: string[];
  outDir?: string;
  /** Print progress lines to stderr. */
  verbose?: boolean;
  /** Sections to run (default: all of bench/sections.ts). */
  sections?: Section[];
  /** Profile overrides, e.g. `{ 'storm.readers': 2000 }` (from `--set=storm.readers=2000,rss.readers=2000`). */
  set?: Record<string, number>;
}

function applyOverrides(base: Profile, set: Record<string, number> = {}): Profile {
  const p = structuredClone(base) as unknown as Record<string, Record<string, number> | number | string>;
  for (const [path, value] of Object.entries(set)) {
    const [group, key] = path.split('.');
    const g = group ? p[group] : undefined;
    if (!group || g === undefined) throw new Error(`--set: unknown profile field ${path}`);
    if (key === undefined) p[group] = value;
    else if (typeof g === 'object' && key in g) g[key] = value;
    else throw new Error(`--set: unknown profile field ${path}`);
  }
  return p as unknown as Profile;
}

export async function runBench(opts: RunOptions): Promise<{ rows: Row[]; file: string; table: string }> {
  const profile = applyOverrides(PROFILES[opts.profile], opts.set);
  const known = (opts.sections ?? SECTIONS).map((s) => s.id);
  const unknown = (opts.only ?? []).filter((id) => !known.includes(id));
  if (unknown.length)
    throw new Error(`unknown section(s) ${unknown.join(', ')}; sections: ${known.join(', ')}`);
  const outDir = opts.outDir ?? join(ROOT, 'bench/results');
  const logDir = join(outDir, 'logs', `${opts.profile}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const started = Date.now();
  const rows: Row[] = [];
  const say = (s: string) => opts.verbose && process.stderr.write(`[bench] ${s}\n`);
  for (const section of opts.sections ?? SECTIONS) {
    if (opts.only && !opts.only.includes(section.id)) continue;
    const t0 = Date.now();
    const ctx = new RowContext(profile, logDir, section.id, (m) =>
      say(`  ${section.id} +${((Date.now() - t0) / 1000).toFixed(1)} s: ${m}`),
    );
    say(`${section.id} …`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const missing = section.requires.filter((r) => !section.present(r));
      if (missing.length > 0) {
        rows.push(
          ...section.skeleton(profile).map((s) => naRow(s, `n/a (component missing: ${missing.join(', ')})`)),
        );
        continue;
      }
      const limitMs = section.timeoutMs?.(profile) ?? profile.rowTimeoutMs;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timeout after ${limitMs / 1000} s`)), limitMs);
      });
      rows.push(...(await Promise.race([section.run(ctx), timeout])));
    } catch (err) {
      const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0]?.slice(0, 200) ?? '';
      say(`${section.id} failed: ${msg}`);
      const why = /component missing/.test(msg) ? 'n/a (component missing)' : `n/a (${msg})`;
      // Rows the section finished before it failed are kept; the others say why they have no value.
      const done = new Set(ctx.rows.map((r) => r.id));
      rows.push(...ctx.rows);
      rows.push(
        ...section
          .skeleton(profile)
          .filter((s) => !done.has(s.id))
          .map((s) => naRow(s, why)),
      );
    } finally {
      clearTimeout(timer);
      await ctx.cleanup();
      say(`${section.id} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      snapshot(rows, opts, outDir, started, false);
    }
  }
  const { table, file } = snapshot(rows, opts, outDir, started, true);
  return { rows, file, table };
}

/** Writes the table as JSON: after every section as `partial-<profile>.json` (a cut-off run keeps its rows), then the final file. */
function snapshot(
  rows: Row[],
  opts: RunOptions,
  outDir: string,
  started: number,
  final: boolean,
): { table: string; file: string } {
  const table = renderTable(rows);
  const meta = {
    profile: opts.profile,
    complete: final,
    startedAt: new Date(started).toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      memBytes: totalmem(),
      loadavg: loadavg(),
    },
    node: process.version,
    table,
  };
  if (!final) {
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `partial-${opts.profile}.json`);
    writeFileSync(file, JSON.stringify({ ...meta, rows }, null, 2));
    return { table, file };
  }
  const { file } = writeResults(outDir, meta, rows);
  return { table, file };
}

function parseArgs(argv: string[]): RunOptions {
  const opts: RunOptions = { profile: 'full', verbose: true };
  for (const a of argv) {
    if (a === '--quick') opts.profile = 'quick';
    else if (a === '--smoke') opts.profile = 'smoke';
    else if (a.startsWith('--only=')) opts.only = a.slice(7).split(',').filter(Boolean);
    else if (a.startsWith('--out=')) opts.outDir = a.slice(6);
    else if (a.startsWith('--set=')) {
      opts.set = {};
      for (const kv of a.slice(6).split(',')) {
        const [k, v] = kv.split('=');
        if (!k || v === undefined || !Number.isFinite(Number(v))) throw new Error(`--set: bad ${kv}`);
        opts.set[k] = Number(v);
      }
    } else if (a === '--quiet') opts.verbose = false;
    else if (a !== '--')
      throw new Error(
        `unknown option ${a} (use --quick, --smoke, --only=a,b, --set=k=n,… --out=dir, --quiet)`,
      );
  }
  return opts;
}

const isMain = process.argv[1] && import.meta.filename === process.argv[1];
if (isMain) {
  const stop = () => {
    killAllWorkers();
    process.exit(130);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  runBench(parseArgs(process.argv.slice(2)))
    .then(({ table, file }) => {
      process.stdout.write(`${table}\n\nresults: ${file}\n`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      killAllWorkers();
      console.error(err);
      process.exit(1);
    });
}
