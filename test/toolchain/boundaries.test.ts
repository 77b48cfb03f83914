import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The import boundaries of docs/design.md ("Shape") are enforced by the linter (eslint.config.js). This lints real
// probe files placed in each folder (the type-aware config needs them on disk), all in one ESLint run,
// and removes them.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cases = {
  deviceToGateway: ['device', '../gateway/src/metrics.js'],
  gatewayToDevice: ['gateway', '../device/src/ports/feedback.js'],
  protocolToGateway: ['protocol', '../gateway/src/metrics.js'],
  protocolToFs: ['protocol', 'node:fs'],
  deviceToProtocol: ['device', '../protocol/index.js'],
  runtimeToGateway: ['runtime', '../gateway/src/metrics.js'],
  runtimeToProtocol: ['runtime', '../protocol/index.js'],
  gatewayToRuntime: ['gateway', '../runtime/sd-notify.js'],
  deviceParseArgs: ['device', 'node:util'],
  gatewayParseArgs: ['gateway', 'util'],
} as const;
type Case = keyof typeof cases;

const files = new Map<Case, string>();
const messages = new Map<Case, string[]>();

beforeAll(async () => {
  for (const [name, [folder, importPath]] of Object.entries(cases) as [Case, readonly [string, string]][]) {
    const file = join(root, folder, `lint-probe-${process.pid}-${name}.ts`);
    writeFileSync(
      file,
      `import * as other from '${importPath}';\nexport const probe = Object.keys(other).length;\n`,
    );
    files.set(name, file);
  }
  try {
    const results = await new ESLint({ cwd: root }).lintFiles([...files.values()]);
    for (const [name, file] of files) {
      const r = results.find((x) => x.filePath === file);
      messages.set(
        name,
        (r?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message),
      );
    }
  } finally {
    for (const f of files.values()) rmSync(f, { force: true });
  }
}, 180_000);

afterAll(() => {
  for (const f of files.values()) rmSync(f, { force: true });
});

describe('import boundaries', () => {
  it('device/ → gateway/ is rejected', () => {
    expect(messages.get('deviceToGateway')).toEqual([
      expect.stringContaining('device/ must not import gateway/'),
    ]);
  });

  it('gateway/ → device/ is rejected', () => {
    expect(messages.get('gatewayToDevice')).toEqual([
      expect.stringContaining('gateway/ must not import device/'),
    ]);
  });

  it('protocol/ importing ours or doing I/O is rejected', () => {
    expect(messages.get('protocolToGateway')).toEqual([expect.stringContaining('protocol/ is pure')]);
    expect(messages.get('protocolToFs')).toEqual([expect.stringContaining('protocol/ does no I/O')]);
  });

  it('device/ → protocol/ is allowed', () => {
    expect(messages.get('deviceToProtocol')).toEqual([]);
  });

  it('runtime/ importing a program is rejected; runtime/ → protocol/ and gateway/ → runtime/ are allowed', () => {
    expect(messages.get('runtimeToGateway')).toEqual([expect.stringContaining('runtime/ is shared')]);
    expect(messages.get('runtimeToProtocol')).toEqual([]);
    expect(messages.get('gatewayToRuntime')).toEqual([]);
  });

  it("device/ and gateway/ parse command lines only through runtime/cli.ts (node:util's parseArgs is rejected)", () => {
    expect(messages.get('deviceParseArgs')).toEqual([
      expect.stringContaining('parseCommandLine from runtime/cli.ts'),
    ]);
    expect(messages.get('gatewayParseArgs')).toEqual([
      expect.stringContaining('parseCommandLine from runtime/cli.ts'),
    ]);
  });
});
