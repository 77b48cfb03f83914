import type { TopicLeaf } from '../../../protocol/index.js';

/** A message a reader published on one of its own topics (already ACL-checked in embedded mode). */
export interface InboundMessage {
  readerId: string;
  leaf: TopicLeaf;
  payload: Buffer;
  /** Authenticated MQTT client id, when the transport knows it (embedded mode). */
  clientId: string | null;
  /**
   * True when the transport found the reader active while authorising this very publish (embedded
   * mode), so ingest does not look the reader up a second time for the same message.
   */
  admitted?: boolean;
}

/** What ingest needs from MQTT, in embedded (aedes) or external (MQTT.js client) mode. */
export interface Transport {
  readonly mode: 'embedded' | 'external';
  start(): Promise<void>;
  /** Refuses new connections; live ones keep working (graceful shutdown: flush and ack first). */
  stopAccepting(): void;
  /** Stops accepting, closes connections. */
  stop(): Promise<void>;
  publish(topic: string, payload: Buffer, opts: { qos: 0 | 1; retain: boolean }): Promise<void>;
  /** Drops a reader's live connection (embedded mode; a no-op externally). */
  disconnect(readerId: string): void;
  isOnline(readerId: string): boolean;
  connectedReaders(): number;
  ready(): boolean;
  /** Bound MQTT port (embedded), or null. */
  readonly port: number | null;
}

export type InboundHandler = (msg: InboundMessage) => void;

/** Who may connect (embedded mode). */
export type AuthResult = 'ok' | 'unknown-reader' | 'bad-password' | 'revoked' | 'throttled';
/** `source`: the peer address (failed-login throttling per source, broker/limits.ts). */
export type Authenticator = (readerId: string, password: string, source?: string) => Promise<AuthResult>;
