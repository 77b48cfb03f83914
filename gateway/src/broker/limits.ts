/**
 * Abuse limits at the broker (issue 16): failed-login throttling and per-reader publish rate limits.
 * Both are token buckets on an injected monotonic clock, kept in bounded maps (an attacker inventing
 * sources or reader ids cannot grow them without bound).
 */

export interface MonoClock {
  monotonic(): number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/** Token buckets by key: `burst` tokens, refilled at `perSecond`; at most `maxKeys` keys (oldest dropped). */
export class KeyedBuckets {
  private readonly buckets = new Map<string, Bucket>();
  constructor(
    private readonly o: { burst: number; perSecond: number; maxKeys?: number },
    private readonly clock: MonoClock,
  ) {}

  private get(key: string): Bucket {
    const now = this.clock.monotonic();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.o.burst, atMs: now };
      const max = this.o.maxKeys ?? 10_000;
      if (this.buckets.size >= max) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    } else {
      b.tokens = Math.min(this.o.burst, b.tokens + ((now - b.atMs) / 1000) * this.o.perSecond);
      b.atMs = now;
      this.buckets.delete(key); // re-insert: the map's order is least recently used first
    }
    this.buckets.set(key, b);
    return b;
  }

  /** Takes `n` tokens if there are; false (nothing taken) otherwise. */
  take(key: string, n = 1): boolean {
    const b = this.get(key);
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  /** Gives `n` tokens back (up to the burst). */
  refund(key: string, n = 1): void {
    const b = this.get(key);
    b.tokens = Math.min(this.o.burst, b.tokens + n);
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface AuthThrottleSettings {
  /** Password checks that may fail from one source (IP address) in a burst, and the refill per minute. */
  perSource: { burst: number; perMinute: number };
  /** The same per reader id (all sources together). */
  perReader: { burst: number; perMinute: number };
}

export const DEFAULT_AUTH_THROTTLE: AuthThrottleSettings = {
  perSource: { burst: 30, perMinute: 30 },
  perReader: { burst: 10, perMinute: 10 },
};

/**
 * Failed-login throttling: decides whether a password check that needs the slow KDF may run. Only
 * FAILED checks use up tokens (a success refunds them), and a check the verified-credential cache
 * answers never gets here: a reader that has connected with its current password is never throttled.
 *
 * A source (IP) out of tokens is refused before any KDF work. A reader id out of tokens (a flood from
 * many sources) still lets each source try it once per minute: an attacker cannot lock a real reader
 * out, whose own address has not failed; the KDF runs at most (sources × 1 per minute) for it.
 */
export class AuthThrottle {
  private readonly sources: KeyedBuckets;
  private readonly readers: KeyedBuckets;
  private readonly firstTry = new Map<string, number>();
  /** Checks refused without running the KDF. */
  throttled = 0;

  constructor(
    private readonly clock: MonoClock,
    s: AuthThrottleSettings = DEFAULT_AUTH_THROTTLE,
  ) {
    this.sources = new KeyedBuckets(
      { burst: s.perSource.burst, perSecond: s.perSource.perMinute / 60 },
      clock,
    );
    this.readers = new KeyedBuckets(
      { burst: s.perReader.burst, perSecond: s.perReader.perMinute / 60 },
      clock,
    );
  }

  /** Whether the KDF may run for this attempt (uses a token from the source and the reader id). */
  allow(source: string, readerId: string): boolean {
    if (!this.sources.take(source)) {
      this.throttled++;
      return false;
    }
    if (this.readers.take(readerId)) return true;
    const key = `${source}\0${readerId}`;
    const now = this.clock.monotonic();
    const last = this.firstTry.get(key);
    if (last === undefined || now - last >= 60_000) {
      if (this.firstTry.size >= 10_000) {
        const oldest = this.firstTry.keys().next().value;
        if (oldest !== undefined) this.firstTry.delete(oldest);
      }
      this.firstTry.delete(key);
      this.firstTry.set(key, now);
      return true;
    }
    this.sources.refund(source);
    this.throttled++;
    return false;
  }

  /** A check that ran: a success gives the tokens back (only failures count). */
  result(source: string, readerId: string, ok: boolean): void {
    if (!ok) return;
    this.sources.refund(source);
    this.readers.refund(readerId);
  }
}

export interface ReaderRateSettings {
  /** PUBLISH messages per second per reader, and the burst. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Payload bytes per second per reader, and the burst. */
  bytesPerSecond: number;
  byteBurst: number;
}

export const DEFAULT_READER_RATE: ReaderRateSettings = {
  messagesPerSecond: 50,
  messageBurst: 500,
  bytesPerSecond: 1024 * 1024,
  byteBurst: 8 * 1024 * 1024,
};

/**
 * Per-reader publish limits: a message over the reader's rate or volume is dropped before ingest (not
 * acknowledged, so an honest reader's journal keeps it and sends it again later: no tap is lost).
 */
export class ReaderRateLimiter {
  private readonly messages: KeyedBuckets;
  private readonly bytes: KeyedBuckets;
  constructor(clock: MonoClock, s: ReaderRateSettings = DEFAULT_READER_RATE) {
    this.messages = new KeyedBuckets({ burst: s.messageBurst, perSecond: s.messagesPerSecond }, clock);
    this.bytes = new KeyedBuckets({ burst: s.byteBurst, perSecond: s.bytesPerSecond }, clock);
  }

  /** null when the message may pass; else which limit it is over. */
  check(readerId: string, size: number): 'rate' | 'volume' | null {
    if (!this.messages.take(readerId)) return 'rate';
    if (!this.bytes.take(readerId, size)) {
      this.messages.refund(readerId);
      return 'volume';
    }
    return null;
  }
}
