/**
 * Compares two V8 heap snapshots (.heapsnapshot, e.g. from BENCH_SOAK_SNAPSHOTS=1: the soak gateway's at a
 * third of the run and at its end): objects and self bytes per constructor name in each, and the names that
 * grew most. Usage: npx tsx bench/snapshot-diff.ts <earlier.heapsnapshot> <later.heapsnapshot> [topN]
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** count and self size per "type:name" (objects by constructor, strings, arrays, closures, …). */
export function tally(file: string): Map<string, { count: number; bytes: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType] as number] ?? '?';
    const raw =
      type === 'string' || type === 'concatenated string' || type === 'sliced string'
        ? ''
        : s.strings[s.nodes[i + iName] as number];
    const key = `${type}:${(raw ?? '').slice(0, 60)}`;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + iSize] as number;
    out.set(key, e);
  }
  return out;
}

const [a, b, top = '30'] = process.argv.slice(2);
if (a && b) {
  const before = tally(a);
  const after = tally(b);
  const rows = [...new Set([...before.keys(), ...after.keys()])].map((k) => {
    const x = before.get(k) ?? { count: 0, bytes: 0 };
    const y = after.get(k) ?? { count: 0, bytes: 0 };
    return { k, dCount: y.count - x.count, dBytes: y.bytes - x.bytes, count: y.count, bytes: y.bytes };
  });
  const sum = (m: Map<string, { bytes: number }>) => [...m.values()].reduce((t, v) => t + v.bytes, 0);
  console.log(
    `total self bytes: ${(sum(before) / 1e6).toFixed(1)} MB -> ${(sum(after) / 1e6).toFixed(1)} MB`,
  );
  console.log('   Δbytes     Δcount   bytes now   type:name');
  for (const r of rows.sort((p, q) => q.dBytes - p.dBytes).slice(0, Number(top))) {
    console.log(
      `${(r.dBytes / 1e3).toFixed(0).padStart(8)} KB ${String(r.dCount).padStart(9)} ${(r.bytes / 1e6).toFixed(2).padStart(8)} MB   ${r.k}`,
    );
  }
}
