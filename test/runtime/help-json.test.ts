import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main as gatewayMain } from '../../gateway/main.js';
import { writeAdminEndpoint } from '../../gateway/src/admin/client.js';
import { EXIT } from '../../runtime/cli.js';
import { exitCodesText, formatHelp, jsonText } from '../../runtime/help.js';
import { ADMIN_TOKEN, PASSWORD, startGateway, tempDir } from '../gateway/helpers.js';

// runtime/help.ts: one help layout for both programs, the exit-code paragraph generated from the sysexits table,
// and `--json` output where a script reads the answer (device status; gateway status and readers list).
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = tempDir('visittag-help-');
afterAll(() => tmp.cleanup());

async function gateway(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await gatewayMain(
    args,
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('runtime/help', () => {
  it('lists every sysexits code of the EXIT table with its meaning', () => {
    const text = exitCodesText();
    for (const code of Object.values(EXIT)) expect(text).toMatch(new RegExp(`\\b${code} [a-z]`));
    expect(text).toContain('64 usage error');
    expect(text).toContain('78 invalid config');
  });

  it('formats usage, options aligned, notes, exit codes and the reference', () => {
    const text = formatHelp({
      program: 'visittag-x',
      summary: 'a test program',
      usage: ['run [--config FILE]'],
      options: [
        { flag: '--config FILE', text: 'the config' },
        { flag: '--json', text: 'machine-readable' },
      ],
      notes: ['A note.'],
      reference: 'x/README.md',
    });
    expect(text.split('\n\n')).toEqual([
      'visittag-x: a test program',
      'Usage:\n  visittag-x run [--config FILE]\n  visittag-x --help',
      'Options:\n  --config FILE   the config\n  --json          machine-readable',
      'A note.',
      `${exitCodesText()}\nSee x/README.md for the full reference.`,
    ]);
    expect(jsonText({ a: [1] })).toBe('{\n  "a": [\n    1\n  ]\n}');
  });

  it('both programs print their help through it: same layout, same exit-code paragraph', async () => {
    const device = spawnSync(process.execPath, [join(root, 'bin', 'visittag-device.js'), '--help'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(device.status).toBe(EXIT.ok);
    const gw = await gateway('--help');
    expect(gw.code).toBe(EXIT.ok);
    for (const [program, text] of [
      ['visittag-device', device.stdout],
      ['visittag-gateway', gw.out],
    ] as const) {
      expect(text.startsWith(`${program}: `)).toBe(true);
      expect(text).toContain(`Usage:\n  ${program} `);
      expect(text).toContain(`\n\n${exitCodesText()}\nSee `);
      expect(text).toMatch(/\n {2}--json {2,}/);
    }
  }, 120_000);
});

describe('--json where a script reads the answer', () => {
  const dataDir = join(tmp.dir, 'data');
  const config = join(tmp.dir, 'gateway.json');
  writeFileSync(
    config,
    JSON.stringify({
      dataDir,
      fleetKey: 'test-fleet-key-0123456789',
      mqtt: { mode: 'embedded', host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
    }),
  );

  it('gateway readers list --json: one document, every reader with its state and links', async () => {
    expect((await gateway('readers', 'list', '--json', '--config', config)).out).toBe(
      jsonText({ readers: [] }),
    );
    expect((await gateway('readers', 'add', 'r-1', '--client', 'c-1', '--config', config)).code).toBe(0);
    expect(
      (await gateway('readers', 'add', 'r-2', '--client', 'c-2', '--label', 'hall', '--config', config)).code,
    ).toBe(0);
    expect((await gateway('readers', 'revoke', 'r-2', '--config', config)).code).toBe(0);
    const r = await gateway('readers', 'list', '--json', '--config', config);
    expect(r.code).toBe(EXIT.ok);
    expect(JSON.parse(r.out)).toEqual({
      readers: [
        {
          readerId: 'r-1',
          clientRef: 'c-1',
          state: 'active',
          contiguousUpto: 0,
          replacedBy: null,
          replaces: null,
          label: null,
        },
        {
          readerId: 'r-2',
          clientRef: 'c-2',
          state: 'revoked',
          contiguousUpto: 0,
          replacedBy: null,
          replaces: null,
          label: 'hall',
        },
      ],
    });
    // The text form is unchanged for people.
    expect((await gateway('readers', 'list', '--config', config)).out.split('\n')[0]).toBe(
      'r-1\tc-1\tactive\tupTo=0',
    );
  });

  it('gateway status --json: not running (exit 1), then the running gateway and its readers (exit 0)', async () => {
    const down = await gateway('status', '--json', '--config', config);
    expect(down.code).toBe(1);
    expect(JSON.parse(down.out)).toMatchObject({ running: false, ready: false, readers: [] });

    const gw = await startGateway(dataDir);
    try {
      await gw.registry.addReader({ readerId: 'r-3', password: PASSWORD, clientRef: null });
      writeAdminEndpoint(dataDir, gw.adminUrl);
      const up = await gateway('status', '--json', '--config', config);
      expect(up.code, up.err).toBe(EXIT.ok);
      const doc = JSON.parse(up.out) as { running: boolean; ready: boolean; readers: { readerId: string }[] };
      expect(doc).toMatchObject({ running: true, ready: true });
      expect(doc.readers.map((x) => x.readerId).sort()).toEqual(['r-1', 'r-2', 'r-3']);
      expect(doc.readers.find((x) => x.readerId === 'r-3')).toEqual({
        readerId: 'r-3',
        connected: false,
        contiguousUpto: 0,
        hasGaps: false,
        queueDepth: null,
      });
    } finally {
      await gw.stop();
    }
  });
});
