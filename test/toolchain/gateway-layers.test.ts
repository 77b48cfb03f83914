import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The gateway's layering (.dependency-cruiser.cjs, described in gateway/src/store/README.md) is
// enforced, not hoped for: the real tree must have no violation, and each rule must fire on a probe
// file that breaks it (written into gateway/ for the run, then removed).
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tag = `zz-layer-probe-${process.pid}`;

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function cruise(paths: string[]): Violation[] {
  const out = execFileSync(
    join(root, 'node_modules', '.bin', 'depcruise'),
    ['--config', '.dependency-cruiser.cjs', '--output-type', 'json', ...paths],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  return (JSON.parse(out) as { summary: { violations: Violation[] } }).summary.violations;
}

const probes: Record<string, string> = {
  [`gateway/src/${tag}/a.ts`]: `import { b } from './b.js';\nexport const a = (): unknown => b;\n`,
  [`gateway/src/${tag}/b.ts`]: `import { a } from './a.js';\nexport const b = (): unknown => a;\n`,
  [`gateway/src/${tag}/driver.ts`]: `import Database from 'better-sqlite3';\nexport const d = Database;\n`,
  [`gateway/src/${tag}/root.ts`]: `import { createGateway } from '../../index.js';\nexport const r = createGateway;\n`,
  [`gateway/src/store/${tag}.ts`]: `import { CardRegistry } from '../cards/registry.js';\nexport const s = CardRegistry;\n`,
  [`gateway/src/admin/${tag}.ts`]: `import { openDatabase } from '../store/sqlite/db.js';\nexport const h = openDatabase;\n`,
};

let real: Violation[] = [];
let probed: Violation[] = [];

beforeAll(() => {
  real = cruise(['gateway']);
  mkdirSync(join(root, 'gateway', 'src', tag), { recursive: true });
  for (const [p, text] of Object.entries(probes)) writeFileSync(join(root, p), text);
  try {
    probed = cruise(Object.keys(probes));
  } finally {
    cleanup();
  }
}, 180_000);

function cleanup(): void {
  for (const p of Object.keys(probes)) rmSync(join(root, p), { force: true });
  rmSync(join(root, 'gateway', 'src', tag), { recursive: true, force: true });
}
afterAll(cleanup);

const fired = (rule: string, from: string): string[] =>
  probed.filter((v) => v.rule.name === rule && v.from === from).map((v) => v.to);

describe('gateway layering (dependency-cruiser)', () => {
  it('the gateway as it is breaks no rule', () => {
    expect(real.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });

  it('an import cycle is refused', () => {
    expect(fired('gateway-no-cycles', `gateway/src/${tag}/a.ts`)).toEqual([`gateway/src/${tag}/b.ts`]);
  });

  it('a database driver outside gateway/src/store/ is refused', () => {
    expect(fired('gateway-db-drivers-only-in-store', `gateway/src/${tag}/driver.ts`)).toEqual([
      expect.stringMatching(/node_modules\/better-sqlite3\//),
    ]);
  });

  it('a module importing the composition root is refused', () => {
    expect(fired('gateway-no-composition-root-from-modules', `gateway/src/${tag}/root.ts`)).toEqual([
      'gateway/index.ts',
    ]);
  });

  it('store/ importing a feature module is refused', () => {
    expect(fired('gateway-store-below-features', `gateway/src/store/${tag}.ts`)).toEqual([
      'gateway/src/cards/registry.ts',
    ]);
  });

  it('admin/ reaching a storage adapter is refused', () => {
    expect(fired('gateway-admin-is-http-only', `gateway/src/admin/${tag}.ts`)).toEqual([
      'gateway/src/store/sqlite/db.ts',
    ]);
  });
});
