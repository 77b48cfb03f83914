import { execFileSync, spawnSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A throw-away PostgreSQL cluster for tests: Debian's server binaries (installed by
 * scripts/setup-system.sh), a data directory in a fresh temp dir, a free loopback port, the socket in
 * the same temp dir, fsync on (the store's durability is part of what the tests check). PostgreSQL
 * refuses to run as root, so when the suite runs as root the temp dir is handed to the `postgres`
 * system user (created by Debian's package) and every server command runs through `runuser`.
 *
 *   const pgc = await startPgCluster();        // a copy of the initdb template + start, ~0.5 s
 *   const url = await pgc.createDatabase();    // a fresh database per test, cheap
 *   await pgc.restart('immediate');            // a crash (no checkpoint) and a start on the same port
 *   await pgc.destroy();                       // stop and delete everything
 */
export interface PgCluster {
  readonly port: number;
  readonly dir: string;
  /** Connection URL of the given database (default `postgres`). */
  url(database?: string): string;
  /** Creates a new empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** `fast` is a clean shutdown, `immediate` a crash (recovery from the WAL at the next start). */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  restart(mode?: 'fast' | 'immediate'): void;
  running(): boolean;
  /** The server log so far (for failure messages). */
  log(): string;
  destroy(): Promise<void>;
}

const OWNER = 'postgres';

/** The newest installed server version's bin directory (`VISITTAG_PG_BINDIR` overrides). */
export function findPgBinDir(): string | null {
  const env = process.env.VISITTAG_PG_BINDIR;
  if (env) return existsSync(join(env, 'initdb')) ? env : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

function ownerIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${OWNER}:`));
  const f = line?.split(':');
  if (!f?.[2] || !f[3]) {
    throw new Error(
      `running as root, PostgreSQL needs an unprivileged owner but there is no '${OWNER}' user. ` +
        "Fix: sudo bash scripts/setup-system.sh (installs Debian's postgresql, which creates it).",
    );
  }
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

const INITDB_ARGS = ['-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '-N'];

/**
 * The data directory of every test cluster is a copy of one initdb run per machine, version and set of
 * initdb arguments (a template under the temp dir, made once and shared by every test process): initdb
 * costs about a second of CPU and 1.5-6 s of wall on a busy 2-core machine, a copy about 0.1 s, and the
 * suite starts some 30 clusters per run on each Node major. The template is built in a directory of its
 * own and renamed into place only when initdb has succeeded (a marker file inside), so a crash half-way
 * leaves nothing another process would take for a template; two processes racing both build and one
 * rename wins. `cp -a` keeps the owner and mode PostgreSQL insists on (0700, the `postgres` user).
 */
function copyTemplate(
  bin: string,
  data: string,
  asRoot: boolean,
  run: (cmd: string, args: string[]) => void,
): void {
  const key = createHash('sha256')
    .update([bin, ...INITDB_ARGS, String(process.getuid?.() ?? '')].join('\0'))
    .digest('hex')
    .slice(0, 16);
  const template = join(tmpdir(), `visittag-pg-template-${key}`);
  const marker = join(template, 'data', '.visittag-template-ok');
  if (!existsSync(marker)) {
    const building = mkdtempSync(join(tmpdir(), 'visittag-pg-template-building-'));
    if (asRoot) {
      const { uid, gid } = ownerIds();
      chownSync(building, uid, gid);
    }
    try {
      run('initdb', ['-D', join(building, 'data'), ...INITDB_ARGS]);
      writeFileSync(join(building, 'data', '.visittag-template-ok'), `${INITDB_ARGS.join(' ')}\n`);
      try {
        renameSync(building, template);
      } catch {
        // another process put its template in place first: use that one
      }
    } finally {
      rmSync(building, { recursive: true, force: true });
    }
  }
  const r = spawnSync('cp', ['-a', join(template, 'data'), data], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`copying the PostgreSQL template ${template} failed: ${r.stderr}`);
  rmSync(join(data, '.visittag-template-ok'), { force: true });
}

export async function startPgCluster(opts: { prefix?: string } = {}): Promise<PgCluster> {
  const bin = findPgBinDir();
  if (!bin) {
    throw new Error(
      'PostgreSQL server binaries not found under /usr/lib/postgresql/<version>/bin. ' +
        "Fix: sudo bash scripts/setup-system.sh (installs Debian's postgresql package).",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), opts.prefix ?? 'vt-pg-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const asRoot = isRoot();
  if (asRoot) {
    const { uid, gid } = ownerIds();
    chownSync(dir, uid, gid);
  }
  const run = (cmd: string, args: string[]): void => {
    const [file, argv] = asRoot
      ? ['runuser', ['-u', OWNER, '--', join(bin, cmd), ...args]]
      : [join(bin, cmd), args];
    const r = spawnSync(file, argv, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) {
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
      throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}\n${tail}`);
    }
  };

  copyTemplate(bin, data, asRoot, run);
  const port = await freePort();
  const serverOpts = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=on',
    '-c synchronous_commit=on',
    '-c max_connections=200',
    '-c shared_buffers=32MB',
  ].join(' ');
  let up = false;
  const start = (): void => {
    run('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', serverOpts, 'start']);
    up = true;
  };
  const stop = (mode: 'fast' | 'immediate' = 'fast'): void => {
    if (!up) return;
    run('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', mode, 'stop']);
    up = false;
  };
  try {
    start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  let n = 0;
  const url = (database = 'postgres'): string =>
    `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  return {
    port,
    dir,
    url,
    async createDatabase(name) {
      const db = name ?? `t${process.pid}_${++n}_${Date.now().toString(36)}`;
      if (!/^[a-z_][a-z0-9_]*$/.test(db)) throw new Error(`database name ${db}: use [a-z0-9_]`);
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${db}`);
      } finally {
        await c.end();
      }
      return url(db);
    },
    stop,
    start,
    restart(mode = 'fast') {
      stop(mode);
      start();
    },
    running: () => up,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    destroy() {
      try {
        stop('immediate');
      } catch {
        // already gone: remove the files anyway
      }
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

/** Kept for callers that want the server version in a report. */
export function pgServerVersion(): string | null {
  const bin = findPgBinDir();
  if (!bin) return null;
  return execFileSync(join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
}
