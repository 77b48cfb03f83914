import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { afterEach, describe, expect, it } from 'vitest';

// The import boundaries of DESIGN.md are enforced by the linter (eslint.config.js). This lints real
// probe files placed in each folder (the type-aware config needs them on disk) and removes them.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const probes: string[] = [];
afterEach(() => {
  for (const p of probes.splice(0)) rmSync(p, { force: true });
});

async function lintProbe(folder: string, importPath: string): Promise<string[]> {
  const file = join(root, folder, `lint-probe-${process.pid}-${probes.length}.ts`);
  probes.push(file);
  writeFileSync(
    file,
    `import * as other from '${importPath}';\nexport const probe = Object.keys(other).length;\n`,
  );
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintFiles([file]);
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('import boundaries', () => {
  it('device/ → gateway/ is rejected', async () => {
    expect(await lintProbe('device', '../gateway/src/metrics.js')).toEqual([
      expect.stringContaining('device/ must not import gateway/'),
    ]);
  });

  it('gateway/ → device/ is rejected', async () => {
    expect(await lintProbe('gateway', '../device/src/ports/feedback.js')).toEqual([
      expect.stringContaining('gateway/ must not import device/'),
    ]);
  });

  it('protocol/ importing ours or doing I/O is rejected', async () => {
    expect(await lintProbe('protocol', '../gateway/src/metrics.js')).toEqual([
      expect.stringContaining('protocol/ is pure'),
    ]);
    expect(await lintProbe('protocol', 'node:fs')).toEqual([
      expect.stringContaining('protocol/ does no I/O'),
    ]);
  });

  it('device/ → protocol/ is allowed', async () => {
    expect(await lintProbe('device', '../protocol/index.js')).toEqual([]);
  });
});
