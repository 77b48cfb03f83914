/**
 * Secure cards through the gateway's ingest: a real gateway (embedded broker on port 0, SQLite file)
 * with `secureCards` configured, a reader publishing batches over MQTT. Refused taps are held as
 * rejected (ack `invalid-event` with the reason) and never stored as events; each tap's assurance
 * is recorded in the secure-card tables.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { pseudonymiseCard, type CardProof, type TapEvent } from '../../protocol/index.js';
import {
  AckCollector,
  connectReader,
  dbOf,
  PASSWORD,
  silent,
  startGateway,
  storedSeqs,
  tempDir,
  testConfig,
} from '../gateway/helpers.js';
import { MASTER, personalisedCard, tapProof } from './helpers.js';

const FLEET = 'test-fleet-key-0123456789'; // the gateway test config's fleet key
const UID = '04D1D2D3D4D5D6';
const R = 'r-secure';
const T0 = Date.UTC(2026, 11, 5, 8, 0, 0);

function ev(seq: number, proof?: CardProof, uid = UID): TapEvent {
  return {
    readerId: R,
    seq,
    eventId: `${R}-e${seq}`,
    card: pseudonymiseCard(uid, FLEET),
    decision: seq % 2 ? 'start' : 'stop',
    visitId: `${R}-v${Math.ceil(seq / 2)}`,
    time: { wallMs: T0 + seq * 60_000, bootId: 'boot-1', monoMs: seq * 60_000, synced: true },
    ...(proof ? { cardProof: proof } : {}),
  };
}

const batch = (...events: TapEvent[]) => ({
  schemaVersion: 1 as const,
  readerId: R,
  sentAt: { wallMs: T0 + 999_000, bootId: 'boot-1', monoMs: 999_000, synced: true },
  events,
});

describe('gateway ingest with secure cards', () => {
  let tmp: ReturnType<typeof tempDir>;
  let gw: Gateway;
  let client: MqttClient;
  let acks: AckCollector;

  beforeAll(async () => {
    tmp = tempDir();
    const keyFile = join(tmp.dir, 'secure-cards.key');
    writeFileSync(keyFile, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex') }), {
      mode: 0o600,
    });
    gw = await startGateway(tmp.dir, {
      secureCards: { keyFile, policy: { uidOnly: 'flag', clone: 'refuse' } },
    });
    await gw.registry.addReader({ readerId: R, password: PASSWORD, clientRef: 'client-1', label: 'Flat 1' });
    client = await connectReader(gw.mqttPort ?? 0, R);
    acks = await AckCollector.attach(client, R);
  });
  afterAll(async () => {
    await client.endAsync(true);
    await gw.stop();
    tmp.cleanup();
  });

  it('a secure tap is stored; its replay and a UID clone are refused with the reason; a resend changes nothing', async () => {
    const card = await personalisedCard(UID);
    const p1 = await tapProof(card);
    await acks.publish(R, batch(ev(1, p1)));
    const a1 = await acks.waitFor((a) => a.upTo === 1);
    expect(a1.rejected).toEqual([]);
    // replayed message (seq 2) and a plain-UID copy of the card (seq 3)
    await acks.publish(R, batch(ev(2, p1), ev(3)));
    const a3 = await acks.waitFor((a) => a.upTo === 3);
    expect(a3.rejected.map((r) => [r.seq, r.reason])).toEqual([
      [2, 'invalid-event'],
      [3, 'invalid-event'],
    ]);
    expect(a3.rejected[0]?.detail).toMatch(/^secure card replayed: replayed SUN message: counter 1/);
    expect(a3.rejected[1]?.detail).toMatch(/^secure card clone-suspect/);
    // the device resends seq 1 (lost ack): still accepted, not a replay
    await acks.publish(R, batch(ev(1, p1)));
    await acks.waitFor((a) => a.upTo === 3 && a.rejected.length === 0);
    // the real card's next tap
    await acks.publish(R, batch(ev(4, await tapProof(card))));
    const a4 = await acks.waitFor((a) => a.upTo === 4);
    expect(a4.rejected).toEqual([]);
    // a plain card: accepted with a flag (policy uidOnly: flag)
    await acks.publish(R, batch(ev(5, undefined, '11223344')));
    await acks.waitFor((a) => a.upTo === 5);
    expect(storedSeqs(gw, R)).toEqual([1, 4, 5]);
    const rows = dbOf(gw)
      .prepare(
        'SELECT seq, assurance, verdict, code, counter FROM secure_taps WHERE reader_id = ? ORDER BY seq',
      )
      .all(R);
    expect(rows).toEqual([
      { seq: 1, assurance: 'secure', verdict: 'accepted', code: 'secure', counter: 1 },
      { seq: 2, assurance: 'secure', verdict: 'refused', code: 'replayed', counter: 1 },
      { seq: 3, assurance: 'uid-only', verdict: 'refused', code: 'clone-suspect', counter: null },
      { seq: 4, assurance: 'secure', verdict: 'accepted', code: 'secure', counter: 2 },
      { seq: 5, assurance: 'uid-only', verdict: 'flagged', code: 'uid-only', counter: null },
    ]);
  });

  it('refuses to start when the key file is readable by others, naming the fix', () => {
    const t = tempDir();
    try {
      const keyFile = join(t.dir, 'k.json');
      writeFileSync(keyFile, JSON.stringify({ version: 1, masterKey: MASTER.toString('hex') }));
      chmodSync(keyFile, 0o640);
      const config = testConfig(t.dir, { secureCards: { keyFile } });
      expect(() => createGateway({ config, logger: silent })).toThrow(/mode 640.*chmod 600/);
    } finally {
      t.cleanup();
    }
  });
});
