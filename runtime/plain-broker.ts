/**
 * mqtts is the production default on both sides of the wire: a broker URL without TLS (`mqtt://`, `ws://`,
 * `tcp://`) is acceptable only on this machine (loopback) or where the config says so explicitly. One rule for
 * `visittag-device run` and `visittag-gateway run` (external broker mode).
 */
const PLAIN = /^(mqtt|ws|tcp):\/\//i;
const LOOPBACK = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

/** Whether `url` is a broker without TLS on another machine (an unparseable URL counts as one). */
export function plainRemoteBroker(url: string): boolean {
  if (!PLAIN.test(url)) return false;
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return true;
  }
  return !LOOPBACK.has(host);
}
