import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * scripts/setup-system.sh on a machine without PostgreSQL, with the system commands replaced by shims
 * on PATH (nothing is installed or stopped for real): Debian's package creates and starts a `main`
 * cluster; the script must stop that one and leave a cluster that was there before alone.
 */
const SCRIPT = join(import.meta.dirname, '../../scripts/setup-system.sh');

function shims(dir: string, state: string): void {
  const sh = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, `#!/usr/bin/env bash\n${body}\n`);
    chmodSync(p, 0o755);
  };
  // every package installed except postgresql (until apt-get installs it)
  sh(
    'dpkg-query',
    `pkg="\${@: -1}"; if [ "$pkg" = postgresql ] && [ ! -e ${state}/installed ]; then exit 1; fi; printf 'install ok installed'`,
  );
  sh('apt-get', `[ "$1" = install ] && touch ${state}/installed; exit 0`);
  sh(
    'pg_lsclusters',
    `echo "14 old 5433 online postgres /var/lib/postgresql/14/old /var/log/postgresql/postgresql-14-old.log"
     [ -e ${state}/installed ] && echo "15 main 5432 online postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log"; exit 0`,
  );
  sh('pg_ctlcluster', `echo "$*" >> ${state}/pg_ctlcluster`);
  sh('systemctl', `echo "$*" >> ${state}/systemctl`);
  sh('pkill', 'exit 0');
  sh('id', `[ "$1" = -u ] && { echo 0; exit 0; }; exec /usr/bin/id "$@"`);
}

describe('setup-system.sh and PostgreSQL', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('installs postgresql when missing and stops only the cluster the install started', () => {
    dir = mkdtempSync(join(tmpdir(), 'vt-setup-'));
    const bin = join(dir, 'bin');
    const state = join(dir, 'state');
    execFileSync('mkdir', ['-p', bin, state]);
    shims(bin, state);
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
    delete env.NODE_ENV;
    delete env.npm_config_omit;
    execFileSync('bash', [SCRIPT], { env, stdio: 'pipe' });
    expect(existsSync(join(state, 'installed'))).toBe(true);
    expect(readFileSync(join(state, 'pg_ctlcluster'), 'utf8').trim().split('\n')).toEqual(['15 main stop']);
  });
});
