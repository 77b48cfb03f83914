import net from 'node:net';

/** Where pcscd listens unless told otherwise (pcsc-lite's compiled-in default on Debian/Raspberry Pi OS). */
export const DEFAULT_PCSCD_SOCKET = '/run/pcscd/pcscd.comm';

/**
 * Whether a pcscd answers on `socketPath` right now. Connects to the UNIX socket and closes at
 * once: a file that exists but refuses connections (pcscd killed, stale socket) counts as absent.
 * This check must pass before nfc-pcsc's `new NFC()`: without a pcscd, its native constructor
 * retries SCardEstablishContext in a loop that never yields (100% CPU, event loop blocked).
 */
export function probePcscd(socketPath: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(ok);
    };
    // A socket-level timeout (not domain timing): a wedged pcscd must not hang the probe.
    s.setTimeout(timeoutMs, () => finish(false));
    s.once('connect', () => finish(true));
    s.once('error', () => finish(false));
  });
}
