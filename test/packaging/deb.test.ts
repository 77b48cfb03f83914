import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The reader's Debian package (packaging/deb/build.sh), installed and removed with dpkg in a Debian root made by
// debootstrap: no systemd is needed to check the files, the service user, permissions and maintainer scripts.
// The root is cached outside the repository (debootstrap of Debian 12 minbase + pcscd: about 2.5 minutes) and
// copied for each run, so the cache stays pristine. `nodejs (>= N)` is satisfied by a stand-in package carrying
// this machine's Node binary (Debian 12's own nodejs is 18), which also lets the test run the installed CLI.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = process.env.VISITTAG_DEB_ROOT_CACHE ?? join(homedir(), '.cache', 'visittag', 'deb-root');
const cachedRoot = join(cache, 'bookworm');
const work = mkdtempSync(join(tmpdir(), 'visittag-deb-'));
const chrootDir = join(work, 'root');
const SLOW = 900_000;

function run(cmd: string, args: string[], opts: { input?: string } = {}): { code: number; out: string } {
  // A clean environment: nothing of this machine's (NODE_OPTIONS, extra CA files…) leaks into the root.
  const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000, input: opts.input ?? '', env });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}
function inRoot(...args: string[]): { code: number; out: string } {
  return run('chroot', [chrootDir, ...args]);
}
function must(r: { code: number; out: string }, what: string): string {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.out}`);
  return r.out;
}

/** A stand-in `nodejs` package: this machine's Node binary at /usr/bin/node, the version of this Node. */
function nodeStandIn(): string {
  const dir = join(work, 'nodejs-standin');
  mkdirSync(join(dir, 'DEBIAN'), { recursive: true });
  mkdirSync(join(dir, 'usr', 'bin'), { recursive: true });
  cpSync(process.execPath, join(dir, 'usr', 'bin', 'node'));
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(dir, 'DEBIAN', 'control'),
    `Package: nodejs\nVersion: ${process.versions.node}-standin\nArchitecture: ${arch}\nMaintainer: test <test@visittag.invalid>\nDescription: test stand-in for Node.js\n`,
  );
  const deb = join(work, 'nodejs-standin.deb');
  // -Znone: the stand-in carries a 100-120 MB Node binary; compressing it (xz) cost minutes on a busy machine.
  must(
    run('dpkg-deb', ['--root-owner-group', '-Znone', '--build', dir, deb]),
    'building the nodejs stand-in',
  );
  return deb;
}

let deb = '';

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the package test uses chroot and must run as root');
  if (!existsSync('/usr/sbin/debootstrap')) {
    throw new Error('debootstrap is missing: run `sudo bash scripts/setup-system.sh`');
  }
  if (!existsSync(join(cachedRoot, 'usr', 'bin', 'dpkg'))) {
    // Debian's package repositories are the only ones reachable; debootstrap uses its default mirror.
    const wip = `${cachedRoot}.wip-${process.pid}`;
    rmSync(wip, { recursive: true, force: true });
    mkdirSync(cache, { recursive: true });
    must(
      run('debootstrap', ['--variant=minbase', '--include=pcscd,adduser', 'bookworm', wip]),
      'debootstrap of Debian 12',
    );
    execFileSync('mv', [wip, cachedRoot]);
  }
  execFileSync('cp', ['-a', cachedRoot, chrootDir]);
  const built = spawnSync('bash', [join(root, 'packaging', 'deb', 'build.sh'), join(work, 'out')], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (built.status !== 0) throw new Error(`build.sh failed:\n${built.stderr}`);
  deb = built.stdout.trim(); // build.sh prints only the .deb's path on stdout
  cpSync(deb, join(chrootDir, 'tmp', 'visittag-reader.deb'));
  cpSync(nodeStandIn(), join(chrootDir, 'tmp', 'nodejs.deb'));
  await Promise.resolve();
}, SLOW);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('visittag-reader .deb in a debootstrap root', () => {
  it('is named visittag-reader_<version>_<arch>.deb and depends on nodejs (>= 20) and pcscd', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string })
      .version;
    expect(deb).toMatch(new RegExp(`/visittag-reader_${version.replaceAll('.', '\\.')}_[a-z0-9]+\\.deb$`));
    const depends = must(run('dpkg-deb', ['-f', deb, 'Depends']), 'dpkg-deb -f');
    expect(depends).toMatch(/nodejs \(>= (2\d)\)/);
    expect(Number(/nodejs \(>= (\d+)\)/.exec(depends)?.[1])).toBeGreaterThanOrEqual(20);
    expect(depends).toContain('pcscd');
  });

  it('installs: service user, state folder, unit, polkit rules, blacklist; starts nothing until provisioned', () => {
    const out = must(inRoot('dpkg', '-i', '/tmp/nodejs.deb', '/tmp/visittag-reader.deb'), 'dpkg -i');
    expect(out).toContain('installed, not started');
    expect(must(inRoot('dpkg-query', '-W', '-f=${Status}', 'visittag-reader'), 'dpkg-query')).toBe(
      'install ok installed',
    );
    const user = must(inRoot('getent', 'passwd', 'visittag'), 'getent')
      .trim()
      .split(':');
    expect(user[5]).toBe('/var/lib/visittag');
    expect(user[6]).toBe('/usr/sbin/nologin');
    expect(Number(user[2])).toBeLessThan(1000); // a system user
    const state = statSync(join(chrootDir, 'var', 'lib', 'visittag'));
    expect(state.mode & 0o777).toBe(0o750);
    expect(state.uid).toBe(Number(user[2]));
    for (const f of [
      'lib/systemd/system/visittag-device.service',
      'etc/polkit-1/rules.d/60-visittag-pcscd.rules',
      'etc/polkit-1/rules.d/61-visittag-timesyncd.rules',
      'etc/modprobe.d/blacklist-visittag-nfc.conf',
      'usr/share/doc/visittag-reader/technician.md',
    ]) {
      expect(existsSync(join(chrootDir, f)), f).toBe(true);
    }
    expect(readFileSync(join(chrootDir, 'etc/modprobe.d/blacklist-visittag-nfc.conf'), 'utf8')).toMatch(
      /^blacklist pn533_usb$/m,
    );
    const unit = readFileSync(join(chrootDir, 'lib/systemd/system/visittag-device.service'), 'utf8');
    expect(unit).toMatch(/^User=visittag$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node .*\/opt\/visittag\/bin\/visittag-device\.js run$/m);
    // Nothing enabled, no config: the reader starts only after provisioning and `systemctl enable`.
    expect(
      existsSync(join(chrootDir, 'etc/systemd/system/multi-user.target.wants/visittag-device.service')),
    ).toBe(false);
    expect(existsSync(join(chrootDir, 'etc/visittag/device.json'))).toBe(false);
    const conffiles = must(inRoot('dpkg-query', '-W', '-f=${Conffiles}', 'visittag-reader'), 'conffiles');
    expect(conffiles).toContain('/etc/polkit-1/rules.d/61-visittag-timesyncd.rules');
  });

  it('the installed CLI runs as the service user, with the packaged bundle and native addons', () => {
    const help = inRoot('runuser', '-u', 'visittag', '--', '/usr/bin/visittag-device', '--help');
    expect(help.code, help.out).toBe(0);
    expect(help.out).toContain('visittag-device');
    // The journal's native SQLite addon loads from the package's node_modules.
    const sqlite = inRoot(
      'runuser',
      '-u',
      'visittag',
      '--',
      '/usr/bin/node',
      '-e',
      "const D=require('/opt/visittag/node_modules/better-sqlite3'); const d=new D(':memory:'); console.log(d.prepare('select 1+1 as x').get().x)",
    );
    expect(sqlite.out.trim()).toBe('2');
  });

  it('removal keeps the journal and its owner; purge removes the config but still keeps the journal', () => {
    const journal = join(chrootDir, 'var/lib/visittag/journal.db');
    writeFileSync(journal, 'unsent taps');
    mkdirSync(join(chrootDir, 'etc/visittag'), { recursive: true });
    writeFileSync(join(chrootDir, 'etc/visittag/device.json'), '{}');
    const removed = must(inRoot('dpkg', '-r', 'visittag-reader'), 'dpkg -r');
    expect(removed).toContain('journal in /var/lib/visittag was kept');
    expect(readFileSync(journal, 'utf8')).toBe('unsent taps');
    expect(existsSync(join(chrootDir, 'opt/visittag/bin/visittag-device.js'))).toBe(false);
    expect(existsSync(join(chrootDir, 'lib/systemd/system/visittag-device.service'))).toBe(false);
    expect(existsSync(join(chrootDir, 'usr/bin/visittag-device'))).toBe(false);
    expect(inRoot('getent', 'passwd', 'visittag').code).toBe(0);
    // Conffiles stay after remove (Debian policy) and go on purge.
    expect(existsSync(join(chrootDir, 'etc/polkit-1/rules.d/60-visittag-pcscd.rules'))).toBe(true);
    must(inRoot('dpkg', '-P', 'visittag-reader'), 'dpkg -P');
    expect(existsSync(join(chrootDir, 'etc/polkit-1/rules.d/60-visittag-pcscd.rules'))).toBe(false);
    expect(existsSync(join(chrootDir, 'etc/visittag'))).toBe(false);
    expect(readFileSync(journal, 'utf8')).toBe('unsent taps');
    expect(inRoot('dpkg-query', '-W', 'visittag-reader').code).not.toBe(0);
  });
});
