/**
 * Summarises a V8 sampling heap profile (.heapprofile, from BENCH_HEAP_PROF=<worker> npm run bench …): live
 * sampled bytes at exit, by package / source area. Usage: npx tsx bench/heap-top.ts <file.heapprofile>
 */
import { readFileSync } from 'node:fs';

/** file:// URL of the project root (this file lives in bench/). */
const PROJECT_URL = new URL('../', import.meta.url).href;

interface HeapNode {
  callFrame: { functionName: string; url: string };
  selfSize: number;
  children: HeapNode[];
}

export function summariseHeap(file: string): string {
  const root = (JSON.parse(readFileSync(file, 'utf8')) as { head: HeapNode }).head;
  const areas = new Map<string, number>();
  const walk = (n: HeapNode, area: string, depth: number) => {
    const raw = n.callFrame.url;
    const url = (raw.startsWith(PROJECT_URL) ? raw.slice(PROJECT_URL.length) : raw).replace(
      /^bench\/results\/build\//,
      '',
    );
    let a = area;
    if (url.includes('node_modules/')) {
      const rest = url.slice(url.lastIndexOf('node_modules/') + 13);
      a = rest.startsWith('@') ? rest.split('/').slice(0, 2).join('/') : (rest.split('/')[0] ?? rest);
    } else if (url && !url.startsWith('node:')) a = url.split('/').slice(0, 2).join('/');
    else if (url.startsWith('node:') && area === '(root)') a = 'node:*';
    areas.set(a, (areas.get(a) ?? 0) + n.selfSize);
    if (depth < 500) for (const c of n.children) walk(c, a, depth + 1);
  };
  walk(root, '(root)', 0);
  const total = [...areas.values()].reduce((x, y) => x + y, 0);
  const lines = [
    `${file}: ${(total / 1024 / 1024).toFixed(1)} MB sampled live JS heap, by first package on the stack`,
  ];
  for (const [k, v] of [...areas].sort((x, y) => y[1] - x[1]).slice(0, 15)) {
    lines.push(
      `  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${(v / 1024 / 1024).toFixed(2).padStart(6)} MB  ${k}`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const f = process.argv[2];
  if (!f) {
    console.error('usage: npx tsx bench/heap-top.ts <file.heapprofile>');
    process.exit(2);
  }
  console.log(summariseHeap(f));
}
