/**
 * Summarises a V8 .cpuprofile (from BENCH_CPU_PROF=<worker> npm run bench …): top functions by self time
 * and self time per source area, and who calls into SQLite (or into the function named by `focus`).
 * Usage: npx tsx bench/profile-top.ts <file.cpuprofile> [topN] [focus function name]
 */
import { readFileSync } from 'node:fs';

/** file:// URL of the project root (this file lives in bench/). */
const PROJECT_URL = new URL('../', import.meta.url).href;

interface Node {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Seconds after the profile's start: keep only samples in [from, to). */
export interface Window {
  from: number;
  to: number;
}

/**
 * The `seconds`-long window (whole seconds) with the least idle time: the load phase of a worker whose
 * profile also covers start-up, provisioning and teardown.
 */
export function busiestWindow(p: Profile, seconds: number): Window {
  const idleIds = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const busy: number[] = [];
  let t = 0;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    const s = Math.floor(t / 1e6);
    if (!idleIds.has(id)) busy[s] = (busy[s] ?? 0) + (p.timeDeltas[i] ?? 0);
  });
  let best = 0;
  let bestAt = 0;
  for (let s = 0; s + seconds <= Math.max(busy.length, seconds); s++) {
    let sum = 0;
    for (let k = s; k < s + seconds; k++) sum += busy[k] ?? 0;
    if (sum > best) {
      best = sum;
      bestAt = s;
    }
  }
  return { from: bestAt, to: bestAt + seconds };
}

/** Busy (not idle) share per whole second of the profile: finds the load phase by eye. */
export function timeline(p: Profile): string {
  const idleIds = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const busy: number[] = [];
  const all: number[] = [];
  let t = 0;
  p.samples.forEach((id, i) => {
    const d = p.timeDeltas[i] ?? 0;
    t += d;
    const s = Math.floor(t / 1e6);
    all[s] = (all[s] ?? 0) + d;
    if (!idleIds.has(id)) busy[s] = (busy[s] ?? 0) + d;
  });
  return all.map((a, s) => `${s}s ${Math.round((100 * (busy[s] ?? 0)) / Math.max(1, a))}%`).join(' ');
}

export function summariseProfile(
  file: string,
  top = 25,
  focus?: string,
  busiest?: number,
  window?: Window,
): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const win = window ?? (busiest ? busiestWindow(p, busiest) : null);
  let clock = 0;
  p.samples.forEach((id, i) => {
    clock += p.timeDeltas[i] ?? 0;
    if (win && (clock < win.from * 1e6 || clock >= win.to * 1e6)) return;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const url = n.callFrame.url.startsWith(PROJECT_URL)
      ? n.callFrame.url.slice(PROJECT_URL.length)
      : n.callFrame.url;
    const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const a = url.startsWith('node_modules/')
      ? url
          .split('/')
          .slice(0, url.startsWith('node_modules/@') ? 3 : 2)
          .join('/')
      : url === ''
        ? `(${n.callFrame.functionName || 'native'})`
        : url.startsWith('node:')
          ? 'node:*'
          : url.split('/').slice(0, 3).join('/');
    area.set(a, (area.get(a) ?? 0) + us);
  }
  // Who calls into SQLite: self time under better-sqlite3, attributed to the nearest caller of ours.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const callers = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const hit = focus ? n.callFrame.functionName === focus : n.callFrame.url.includes('better-sqlite3');
    if (!hit) continue;
    let cur = parent.get(id);
    let label = '(unknown)';
    for (let hops = 0; cur !== undefined && hops < 50; hops++) {
      const c = byId.get(cur);
      const u = c?.callFrame.url ?? '';
      if (c && u.startsWith(PROJECT_URL) && !u.includes('node_modules')) {
        label = `${c.callFrame.functionName || '(anon)'} ${u.slice(PROJECT_URL.length)}:${c.callFrame.lineNumber + 1}`;
        break;
      }
      cur = parent.get(cur);
    }
    callers.set(label, (callers.get(label) ?? 0) + us);
  }
  // Inclusive time of project functions: a sample counts once for every project function on its stack.
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const onStack = new Set<string>();
    for (let cur: number | undefined = id, hops = 0; cur !== undefined && hops < 200; hops++) {
      const c = byId.get(cur);
      const u = c?.callFrame.url ?? '';
      if (c && u.startsWith(PROJECT_URL) && !u.includes('node_modules')) {
        onStack.add(`${c.callFrame.functionName || '(anon)'} ${u.slice(PROJECT_URL.length)}`);
      }
      cur = parent.get(cur);
    }
    for (const k of onStack) inclusive.set(k, (inclusive.get(k) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const span = win
    ? ` (${window ? 'window' : `busiest ${busiest} s window`}: ${win.from}–${win.to} s after start)`
    : '';
  const lines = [
    `${file}: ${(total / 1e6).toFixed(2)} s sampled${span}`,
    `busy per second: ${timeline(p)}`,
    '',
    'self time by area:',
  ];
  for (const [k, v] of [...area].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', 'top functions (self):');
  for (const [k, v] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', `${focus ? `"${focus}"` : 'SQLite (better-sqlite3)'} self time by nearest project caller:`);
  for (const [k, v] of [...callers].sort((a, b) => b[1] - a[1]).slice(0, 12)) lines.push(`  ${pct(v)}  ${k}`);
  lines.push('', 'inclusive time of project functions (self + callees):');
  for (const [k, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top))
    lines.push(`  ${pct(v)}  ${k}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const busiestArg = process.argv.find((a) => a.startsWith('--busiest='));
  const windowArg = process.argv.find((a) => a.startsWith('--window='));
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const f = args[0];
  if (!f) {
    console.error('usage: npx tsx bench/profile-top.ts <file.cpuprofile> [topN] [focus] [--busiest=SECONDS]');
    process.exit(2);
  }
  const busiest = busiestArg ? Number(busiestArg.slice('--busiest='.length)) : undefined;
  const [from, to] = (windowArg?.slice('--window='.length) ?? '').split('-').map(Number);
  const window = windowArg && from !== undefined && to !== undefined ? { from, to } : undefined;
  console.log(summariseProfile(f, Number(args[1] ?? 25), args[2] || undefined, busiest, window));
}
