/**
 * Small MQTT packets go out at once (TCP_NODELAY). With Nagle on, the PUBACK for an ack and the next batch right
 * after it are two small writes: the second waits until the gateway's TCP acknowledges the first, up to its
 * delayed-ACK time (about 40 ms on Linux), once per batch while a backlog drains. The gateway's side does the same
 * (gateway/src/broker/embedded.ts). Streams without the option (WebSocket) are left as they are.
 */
export function noNagle(client: object): void {
  const stream = (client as { stream?: unknown }).stream as
    { setNoDelay?: (on: boolean) => unknown } | undefined;
  try {
    stream?.setNoDelay?.(true);
  } catch {
    // a stream that cannot: Nagle stays, nothing else changes
  }
}
