import type { MetricsRegistry } from '../metrics.js';

/**
 * Where each admitted connection is on its way to a connected reader (issue 15, the reconnect storm's
 * "admitted but never connected" readers). A connection the admission hands to the broker goes through:
 *
 * - `no-bytes`: handed to the broker, nothing read from it yet;
 * - `bytes`: bytes read, no CONNECT handled yet;
 * - `connect`: its CONNECT is being checked (pre-connect, then the credentials);
 * - `authenticated`: the credentials passed, the CONNACK is not sent yet.
 *
 * It leaves the tracker when its CONNACK has gone out (a connected reader) or when it closes. An on-call
 * engineer reads `visittag_mqtt_handshakes{stage}` (open handshakes now) and
 * `visittag_mqtt_handshakes_abandoned_total{stage}` (closed before their CONNACK, by the stage they had
 * reached): connections that pile up in one stage say which step does not move.
 */
export type HandshakeStage = 'no-bytes' | 'bytes' | 'connect' | 'authenticated';

const STAGES: readonly HandshakeStage[] = ['no-bytes', 'bytes', 'connect', 'authenticated'];

interface Entry {
  stage: 'admitted' | 'connect' | 'authenticated';
  /** Bytes have been read from it (`no-bytes` against `bytes`). */
  hasBytes: boolean;
}

/** The gateway has work in hand for it: bytes read. A `no-bytes` connection costs nothing while it waits. */
const working = (e: Entry): boolean => e.hasBytes || e.stage !== 'admitted';

export class HandshakeTracker {
  private readonly open = new Map<object, Entry>();
  private readonly abandoned: Record<HandshakeStage, number> = {
    'no-bytes': 0,
    bytes: 0,
    connect: 0,
    authenticated: 0,
  };
  completed = 0;
  private workingNow = 0;

  constructor(metrics?: MetricsRegistry) {
    if (!metrics) return;
    metrics.gauge(
      'visittag_mqtt_handshakes',
      'Admitted MQTT connections not yet connected, by the step they are at (no-bytes, bytes, connect, authenticated).',
      () => {
        const c = this.counts();
        return STAGES.map((stage) => ({ labels: { stage }, value: c[stage] }));
      },
    );
    metrics.gauge(
      'visittag_mqtt_handshakes_abandoned_total',
      'Admitted MQTT connections that closed before their CONNACK, by the step they had reached.',
      () => STAGES.map((stage) => ({ labels: { stage }, value: this.abandoned[stage] })),
    );
  }

  /** `conn`: the stream the broker reads (the key the later calls use). */
  admitted(conn: object): void {
    this.open.set(conn, { stage: 'admitted', hasBytes: false });
  }

  /** Its first bytes were read. */
  bytes(conn: object): void {
    this.update(conn, (e) => (e.hasBytes = true));
  }

  connect(conn: object): void {
    this.update(conn, (e) => (e.stage = 'connect'));
  }

  authenticated(conn: object): void {
    this.update(conn, (e) => (e.stage = 'authenticated'));
  }

  /** Its CONNACK went out. */
  ready(conn: object): void {
    const e = this.open.get(conn);
    if (!e) return;
    this.remove(conn, e);
    this.completed++;
  }

  closed(conn: object): void {
    const e = this.open.get(conn);
    if (!e) return;
    this.remove(conn, e);
    this.abandoned[stageOf(e)]++;
  }

  /**
   * Open handshakes the gateway has work in hand for (bytes read: every stage but `no-bytes`): what the
   * admission's handshake window counts. A connection whose CONNECT has not arrived (a client whose first
   * segments the kernel dropped retransmits them seconds later) costs nothing and holds no place.
   */
  workingCount(): number {
    return this.workingNow;
  }

  private update(conn: object, change: (e: Entry) => void): void {
    const e = this.open.get(conn);
    if (!e) return;
    const before = working(e);
    change(e);
    if (!before && working(e)) this.workingNow++;
  }

  private remove(conn: object, e: Entry): void {
    this.open.delete(conn);
    if (working(e)) this.workingNow--;
  }

  counts(): Record<HandshakeStage, number> {
    const c: Record<HandshakeStage, number> = { 'no-bytes': 0, bytes: 0, connect: 0, authenticated: 0 };
    for (const e of this.open.values()) c[stageOf(e)]++;
    return c;
  }

  abandonedCounts(): Record<HandshakeStage, number> {
    return { ...this.abandoned };
  }
}

function stageOf(e: Entry): HandshakeStage {
  if (e.stage !== 'admitted') return e.stage;
  return e.hasBytes ? 'bytes' : 'no-bytes';
}
