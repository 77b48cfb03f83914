/**
 * A real pcscd for the suite: `pcscd --foreground` with its own reader.conf.d directory holding
 * vsmartcard's vpcd driver on a free TCP port (so no fixed port and no clash with a system vpcd).
 * pcscd's client socket path is compiled in (/run/pcscd/pcscd.comm), so only one pcscd can run:
 * the fixture takes a cross-process lock, stops a pcscd it finds running (by its pid file) and
 * cleans stale files. Reader removal: restart pcscd with an empty reader.conf.d (see HARDWARE.md).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const PCSCD_SOCKET = '/run/pcscd/pcscd.comm';
const PCSCD_PID_FILE = '/run/pcscd/pcscd.pid';
const VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';
const LOCK_FILE = path.join(os.tmpdir(), 'visittag-pcscd.lock');
const SETUP_HINT =
  'run `sudo bash scripts/setup-system.sh` (installs pcscd, libpcsclite-dev and vsmartcard-vpcd)';
/** Name pcscd gives slot 0 of our vpcd (FRIENDLYNAME + " 00 00"). */
export const VPCD_READER_NAME = 'visittag Virtual PCD 00 00';

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function findPcscd(): string {
  for (const p of ['/usr/sbin/pcscd', '/usr/local/sbin/pcscd', '/sbin/pcscd']) if (fs.existsSync(p)) return p;
  throw new Error(`pcscd is not installed: ${SETUP_HINT}`);
}

/** Fails with a message naming the setup script when the system parts are missing. */
export function assertPcscStackInstalled(): string {
  const bin = findPcscd();
  if (!fs.existsSync(VPCD_DRIVER))
    throw new Error(`vsmartcard-vpcd is not installed (${VPCD_DRIVER}): ${SETUP_HINT}`);
  if (process.getuid?.() !== 0)
    throw new Error('the PC/SC tests start pcscd and must run as root (pcscd owns /run/pcscd)');
  return bin;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \([^)]*\) Z/.test(stat); // a zombie holds no socket
  } catch {
    return false;
  }
}

async function acquireLock(): Promise<() => void> {
  for (let i = 0; i < 1_200; i++) {
    try {
      fs.writeFileSync(LOCK_FILE, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(LOCK_FILE, { force: true });
    } catch {
      const holder = Number(fs.readFileSync(LOCK_FILE, { encoding: 'utf8', flag: 'a+' }));
      if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) fs.rmSync(LOCK_FILE, { force: true });
      else await pause(100);
    }
  }
  throw new Error(`another test process holds ${LOCK_FILE} for more than 2 minutes`);
}

/** Stops a pcscd that is not ours (system service, leftover) by the pid in its pid file. */
async function stopOtherPcscd(): Promise<void> {
  let pid = NaN;
  try {
    pid = Number(fs.readFileSync(PCSCD_PID_FILE, 'utf8').trim());
  } catch {
    // no pid file
  }
  if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
    const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    if (comm === 'pcscd') {
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && alive(pid); i++) await pause(50);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  if (!(Number.isInteger(pid) && alive(pid))) {
    fs.rmSync(PCSCD_SOCKET, { force: true });
    fs.rmSync(PCSCD_PID_FILE, { force: true });
  }
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
  private proc: ChildProcess | null = null;
  private release: (() => void) | null = null;
  private bin = '';
  private starts = 0;

  /** Takes the lock, stops any other pcscd and starts ours (with the virtual reader by default). */
  async setup(opts: { withReader?: boolean } = {}): Promise<void> {
    this.bin = assertPcscStackInstalled();
    this.release = await acquireLock();
    await stopOtherPcscd();
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
    const proc = spawn(this.bin, ['--foreground', '--info', '-c', conf], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
      if (this.proc === proc) this.proc = null;
    });
    for (let i = 0; i < 200; i++) {
      if (exited) throw new Error(`pcscd exited at start; see ${this.dir}/pcscd-${this.starts}.log`);
      if (await connectable(PCSCD_SOCKET)) return;
      await pause(25);
    }
    throw new Error(`pcscd did not create ${PCSCD_SOCKET} within 5 s; see ${this.dir}`);
  }

  /** Stops pcscd (SIGTERM, SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    // Socket first: a client that probes between SIGTERM and exit would otherwise reach the dying
    // pcscd, and nfc-pcsc's `new NFC()` then spins (blocking this very process) until a pcscd returns.
    fs.rmSync(PCSCD_SOCKET, { force: true });
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
    this.release?.();
    this.release = null;
    if (process.env.VISITTAG_KEEP_ARTIFACTS !== '1') fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
