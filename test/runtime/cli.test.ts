import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main as gatewayMain } from '../../gateway/main.js';
import { bashCompletion, EXIT, parseCommandLine, parseSubcommand } from '../../runtime/cli.js';

// runtime/cli.ts: one way for both CLIs to parse options, report usage errors (64) and config errors (78), and
// produce bash completion. The device CLI is checked as a real child process.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const device = join(root, 'bin', 'visittag-device.js');
const tmp = mkdtempSync(join(tmpdir(), 'visittag-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  return spawnSync(process.execPath, [device, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('runtime/cli', () => {
  it('sysexits codes', () => {
    expect(EXIT).toEqual({ ok: 0, failure: 1, usage: 64, data: 65, noInput: 66, config: 78 });
  });

  it('parseCommandLine returns a usage error instead of throwing', () => {
    const opts = { json: { type: 'boolean' }, config: { type: 'string' } } as const;
    const ok = parseCommandLine(['status', '--json', '--config', 'x.json'], opts);
    expect(ok).toEqual({ ok: true, values: { json: true, config: 'x.json' }, positionals: ['status'] });
    const bad = parseCommandLine(['status', '--jsno'], opts);
    expect(bad.ok).toBe(false);
    expect(bad.ok ? '' : bad.message).toContain('--jsno');
  });

  it('parseSubcommand: usage error (64) with the help, --help (0), and no positionals where a command takes none', () => {
    const opts = { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;
    const printed: string[] = [];
    const out = (t: string) => printed.push(`out:${t}`);
    const err = (t: string) => printed.push(`err:${t}`);
    expect(parseSubcommand(['--bogus'], opts, 'HELP', out, err)).toBe(EXIT.usage);
    expect(parseSubcommand(['-h'], opts, 'HELP', out, err)).toBe(EXIT.ok);
    expect(parseSubcommand(['extra'], opts, 'HELP', out, err, true)).toBe(EXIT.usage);
    expect(printed).toEqual([
      expect.stringMatching(/^err:.*--bogus[^]*\n\nHELP$/),
      'out:HELP',
      "err:Unexpected argument 'extra'\n\nHELP",
    ]);
    expect(parseSubcommand(['extra', '--config', 'c.json'], opts, 'HELP', out, err)).toEqual({
      ok: true,
      values: { config: 'c.json' },
      positionals: ['extra'],
    });
  });

  it('bashCompletion is valid bash and completes commands, then the options of the command typed', () => {
    const script = bashCompletion('visittag-x', [
      { name: 'run', options: ['config'] },
      { name: 'status', options: ['config', 'json'] },
    ]);
    const file = join(tmp, 'completion.bash');
    writeFileSync(file, script);
    execFileSync('bash', ['-n', file]);
    const complete = (line: string): string =>
      execFileSync(
        'bash',
        [
          '-c',
          `source ${file}; COMP_WORDS=(${line}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _visittag_x_complete; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8' },
      ).trim();
    expect(complete('visittag-x st')).toBe('status');
    expect(complete('visittag-x status --j')).toBe('--json');
    expect(complete('visittag-x run --')).toBe('--config --help');
  });
});

describe('visittag-device uses it', () => {
  it('exit 64 on an unknown option or command, 78 on a missing config, 0 for --help', () => {
    expect(cli('status', '--no-such-option').status).toBe(EXIT.usage);
    expect(cli('frobnicate').status).toBe(EXIT.usage);
    const missing = cli('status', '--config', join(tmp, 'absent.json'));
    expect(missing.status, missing.stderr).toBe(EXIT.config);
    expect(cli('--help').status).toBe(EXIT.ok);
    // its subcommands parse through the same module: provision, selftest, personalise-card
    for (const sub of ['provision', 'selftest', 'personalise-card']) {
      const bad = cli(sub, '--no-such-option');
      expect(bad.status, `${sub}: ${bad.stderr}`).toBe(EXIT.usage);
      expect(bad.stderr).toContain('--no-such-option');
      expect(cli(sub, 'stray').status, sub).toBe(EXIT.usage);
      expect(cli(sub, '--help').status, sub).toBe(EXIT.ok);
    }
  }, 120_000);

  it('prints a bash completion script for its commands', () => {
    const r = cli('completion', 'bash');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('complete -o default -F _visittag_device_complete visittag-device');
    for (const c of ['run', 'status', 'provision', 'selftest']) expect(r.stdout).toContain(c);
    const file = join(tmp, 'device.bash');
    writeFileSync(file, r.stdout);
    execFileSync('bash', ['-n', file]);
    expect(cli('completion', 'zsh').status).toBe(EXIT.usage);
  }, 120_000);
});

describe('visittag-gateway uses it', () => {
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await gatewayMain(
      args,
      (l) => out.push(l),
      (l) => err.push(l),
    );
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  it('exit 64 for usage errors in the main command and its subcommands, 78 for a missing config', async () => {
    expect((await run('frobnicate', '--config', join(tmp, 'absent.json'))).code).toBe(EXIT.config);
    expect((await run('--no-such-option')).code).toBe(EXIT.usage);
    expect((await run()).code).toBe(EXIT.usage);
    expect((await run('readers', 'enroll', '--bogus')).code).toBe(EXIT.usage);
    expect((await run('readers', 'replace')).code).toBe(EXIT.usage);
    expect((await run('readers', 'command')).code).toBe(EXIT.usage);
    expect((await run('cards', '--bogus')).code).toBe(EXIT.usage);
    expect((await run('--help')).code).toBe(EXIT.ok);
  });

  it('prints a bash completion script for its commands', async () => {
    const r = await run('completion', 'bash');
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain('complete -o default -F _visittag_gateway_complete visittag-gateway');
    const file = join(tmp, 'gateway.bash');
    writeFileSync(file, `${r.out}\n`);
    execFileSync('bash', ['-n', file]);
  });
});
