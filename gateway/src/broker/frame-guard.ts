import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

/**
 * Sits between a client socket and aedes and reads MQTT fixed headers as bytes arrive. A packet whose
 * declared remaining length exceeds `maxPacketBytes`, or whose length field is malformed (a fifth
 * continuation byte), closes the connection before the body is buffered. aedes' own parser would
 * otherwise buffer up to 256 MiB per connection. Writes pass straight through to the socket, a packet's
 * pieces as one write: mqtt-packet writes a packet in several small chunks between `cork()` and an `uncork()`
 * on the next tick; without `_writev` the stream handed them to `_write` one at a time, each waiting for
 * the previous one's socket write to complete (a syscall and an event-loop turn per piece).
 */
export class FrameGuard extends Duplex {
  private state: 'header' | 'length' | 'body' = 'header';
  private lengthMultiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;

  constructor(
    private readonly socket: Socket,
    private readonly maxPacketBytes: number,
    private readonly onViolation: (reason: string) => void,
  ) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => {
      const bad = this.scan(chunk);
      if (bad) {
        this.onViolation(bad);
        socket.destroy();
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      if (!this.destroyed) this.destroy();
    });
    socket.pause();
  }

  /** Returns a violation, or null when the bytes are acceptable so far. */
  private scan(chunk: Buffer): string | null {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'header':
          i++;
          this.state = 'length';
          this.lengthMultiplier = 1;
          this.lengthBytes = 0;
          this.remaining = 0;
          break;
        case 'length': {
          const b = chunk[i++] as number;
          this.remaining += (b & 0x7f) * this.lengthMultiplier;
          this.lengthMultiplier *= 128;
          this.lengthBytes++;
          if (this.remaining > this.maxPacketBytes) {
            return `packet larger than ${this.maxPacketBytes} bytes`;
          }
          if (b & 0x80) {
            if (this.lengthBytes >= 4) return 'malformed remaining length';
          } else {
            this.state = this.remaining > 0 ? 'body' : 'header';
          }
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = 'header';
          break;
        }
      }
    }
    return null;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.destroyed) return cb();
    this.socket.write(chunk, (err) => cb(err ?? null));
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    cb: (err?: Error | null) => void,
  ): void {
    if (this.socket.destroyed) return cb();
    const data = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.socket.write(data, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
