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
  /** Bytes read so far (the frame guard's count), for `no-bytes` against `bytes`. */
  bytesIn: () => number;
}

export class HandshakeTracker {
  private readonly open = new Map<object, Entry>();
  private readonly abandoned: Record<HandshakeStage, number> = {
    'no-bytes': 0,
    bytes: 0,
    connect: 0,
    authenticated: 0,
  };
  completed = 0;

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
  admitted(conn: object, bytesIn: () => number): void {
    this.open.set(conn, { stage: 'admitted', bytesIn });
  }

  connect(conn: object): void {
    const e = this.open.get(conn);
    if (e) e.stage = 'connect';
  }

  authenticated(conn: object): void {
    const e = this.open.get(conn);
    if (e) e.stage = 'authenticated';
  }

  /** Its CONNACK went out. */
  ready(conn: object): void {
    if (this.open.delete(conn)) this.completed++;
  }

  closed(conn: object): void {
    const e = this.open.get(conn);
    if (!e) return;
    this.open.delete(conn);
    this.abandoned[stageOf(e)]++;
  }

  /** Open handshakes now (all stages). */
  openCount(): number {
    return this.open.size;
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
  return e.bytesIn() > 0 ? 'bytes' : 'no-bytes';
}
