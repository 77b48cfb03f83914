/**
 * A real pcscd for the suite: `pcscd --foreground` with its own reader.conf.d directory holding
 * vsmartcard's vpcd driver on a free TCP port (so no fixed port and no clash with a system vpcd).
 * pcscd's socket path is compiled in (/run/pcscd/pcscd.comm), so each fixture starts its pcscd in a mount
 * namespace of its own (`unshare --mount`) where the fixture's own directory is bound over /run/pcscd: the
 * socket appears in that directory, and the clients (libpcsclite in this process and in the children it
 * starts, and the device driver's probe) find it through PCSCLITE_CSOCK_NAME, which the fixture sets. So
 * several PC/SC test files (and several Node majors' suites) run at once, each with its own daemon, and a
 * system pcscd is left alone. Reader removal: restart pcscd with an empty reader.conf.d (see HARDWARE.md).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';
const SETUP_HINT =
  'run `sudo bash scripts/setup-system.sh` (installs pcscd, libpcsclite-dev, vsmartcard-vpcd and util-linux)';
/** Name pcscd gives slot 0 of our vpcd (FRIENDLYNAME + " 00 00"). */
export const VPCD_READER_NAME = 'visittag Virtual PCD 00 00';

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function findPcscd(): string {
  for (const p of ['/usr/sbin/pcscd', '/usr/local/sbin/pcscd', '/sbin/pcscd']) if (fs.existsSync(p)) return p;
  throw new Error(`pcscd is not installed: ${SETUP_HINT}`);
}

function findUnshare(): string {
  for (const p of ['/usr/bin/unshare', '/bin/unshare']) if (fs.existsSync(p)) return p;
  throw new Error(`unshare is not installed: ${SETUP_HINT}`);
}

/** Fails with a message naming the setup script when the system parts are missing. */
export function assertPcscStackInstalled(): string {
  const bin = findPcscd();
  if (!fs.existsSync(VPCD_DRIVER))
    throw new Error(`vsmartcard-vpcd is not installed (${VPCD_DRIVER}): ${SETUP_HINT}`);
  if (process.getuid?.() !== 0)
    throw new Error('the PC/SC tests start pcscd in a mount namespace of its own and must run as root');
  return bin;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Two consecutive free ports (vpcd opens one per slot: port and port + 1). */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen({ port: 0, host: '0.0.0.0' }, () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    if (port > 0 && port < 65_000 && (await portFree(port + 1))) return port;
  }
  throw new Error('no two consecutive free TCP ports');
}

function connectable(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class PcscdFixture {
  /** TCP port of vpcd slot 0 (where a VirtualCard connects). */
  port = 0;
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'visittag-pcscd-'));
  /** What pcscd sees as /run/pcscd: its socket and pid file. */
  readonly runDir = path.join(this.dir, 'run');
  /** pcscd's client socket; PCSCLITE_CSOCK_NAME while the fixture is set up. */
  readonly socket = path.join(this.runDir, 'pcscd.comm');
  private proc: ChildProcess | null = null;
  private bin = '';
  private unshare = '';
  private starts = 0;
  private envBefore: string | undefined;

  /** Starts our pcscd (with the virtual reader by default) and points this process's clients at it. */
  async setup(opts: { withReader?: boolean } = {}): Promise<void> {
    this.bin = assertPcscStackInstalled();
    this.unshare = findUnshare();
    fs.mkdirSync(this.runDir);
    // libpcsclite reads it once, at its first connection: before nfc-pcsc is first used in this process
    this.envBefore = process.env.PCSCLITE_CSOCK_NAME;
    process.env.PCSCLITE_CSOCK_NAME = this.socket;
    this.port = await freePortPair();
    const confDir = path.join(this.dir, 'with-reader.d');
    fs.mkdirSync(confDir);
    fs.mkdirSync(path.join(this.dir, 'empty.d'));
    const hex = `0x${this.port.toString(16).toUpperCase()}`;
    fs.writeFileSync(
      path.join(confDir, 'vpcd'),
      `FRIENDLYNAME "visittag Virtual PCD"\nDEVICENAME   /dev/null:${hex}\nLIBPATH      ${VPCD_DRIVER}\nCHANNELID    ${hex}\n`,
    );
    await this.start(opts);
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /** Starts pcscd; resolves once its socket accepts connections. */
  async start(opts: { withReader?: boolean } = {}): Promise<void> {
    if (this.proc) throw new Error('pcscd already running');
    const conf = path.join(this.dir, opts.withReader === false ? 'empty.d' : 'with-reader.d');
    const log = fs.openSync(path.join(this.dir, `pcscd-${++this.starts}.log`), 'w');
    // pcscd in a mount namespace of its own, with this fixture's run directory bound over /run/pcscd; `exec`
    // keeps the pid ours, so SIGTERM and SIGKILL reach pcscd itself
    const proc = spawn(
      this.unshare,
      [
        ...['--mount', '--propagation', 'private', '--', 'sh', '-c'],
        'mkdir -p /run/pcscd && mount --bind "$0" /run/pcscd && exec "$@"',
        ...[this.runDir, this.bin, '--foreground', '--info', '-c', conf],
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
      if (this.proc === proc) this.proc = null;
    });
    for (let i = 0; i < 200; i++) {
      if (exited) throw new Error(`pcscd exited at start; see ${this.dir}/pcscd-${this.starts}.log`);
      if (await connectable(this.socket)) return;
      await pause(25);
    }
    throw new Error(`pcscd did not create ${this.socket} within 5 s; see ${this.dir}`);
  }

  /** Stops pcscd (SIGTERM, SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    // Socket first: a client that probes between SIGTERM and exit would otherwise reach the dying
    // pcscd, and nfc-pcsc's `new NFC()` then spins (blocking this very process) until a pcscd returns.
    fs.rmSync(this.socket, { force: true });
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(t);
    this.proc = null;
  }

  async restart(opts: { withReader?: boolean } = {}): Promise<void> {
    await this.stop();
    await this.start(opts);
  }

  async teardown(): Promise<void> {
    await this.stop();
    if (this.envBefore === undefined) delete process.env.PCSCLITE_CSOCK_NAME;
    else process.env.PCSCLITE_CSOCK_NAME = this.envBefore;
    if (process.env.VISITTAG_KEEP_ARTIFACTS !== '1') fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
