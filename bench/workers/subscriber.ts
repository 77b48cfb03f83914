/**
 * Baseline subscribers on a real Mosquitto, in their own process:
 *  - `relay`: counts messages on `visittag/v1/readers/+/events` (QoS 1): Mosquitto's raw relay rate.
 *  - `glue`: what a careful user would otherwise write: for each message, JSON.parse, one INSERT into
 *    SQLite (better-sqlite3, WAL, synchronous=FULL, one transaction per message, dedupe by unique key),
 *    then publish an app-level ack to the reader so it may delete the taps. No zod validation (a
 *    generous baseline: it does less work per message than the gateway).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../../protocol/index.js';
import { serve } from '../lib/serve.js';
import { wallNow } from '../lib/stats.js';

let client: MqttClient | null = null;
let db: Database.Database | null = null;
let dir: string | null = null;
let count = 0;
let firstAt = 0;
let lastAt = 0;
let errors = 0;

serve({
  async start(args: { url: string; mode: 'relay' | 'glue' }) {
    count = 0;
    firstAt = 0;
    lastAt = 0;
    errors = 0;
    let insert: Database.Statement | null = null;
    if (args.mode === 'glue') {
      dir = mkdtempSync(join(tmpdir(), 'visittag-bench-glue-'));
      db = new Database(join(dir, 'glue.db'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec(`CREATE TABLE IF NOT EXISTS batches (
        reader_id TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
        body TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (reader_id, first_seq))`);
      insert = db.prepare('INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?, ?)');
    }
    const c = mqtt.connect(args.url, { clientId: `bench-sub-${args.mode}`, clean: true, reconnectPeriod: 0 });
    client = c;
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    c.on('error', () => errors++);
    c.on('message', (_topic, payload) => {
      count++;
      const now = wallNow();
      if (count === 1) firstAt = now;
      lastAt = now;
      if (!insert) return;
      try {
        const b = JSON.parse(payload.toString('utf8')) as {
          readerId: string;
          events: { seq: number }[];
        };
        const first = b.events[0]?.seq ?? 0;
        const last = b.events[b.events.length - 1]?.seq ?? 0;
        insert.run(b.readerId, first, last, payload.toString('utf8'), Math.round(now));
        // A careful user acks only after the commit (the device deletes on this ack).
        const ack = JSON.stringify({ schemaVersion: 1, readerId: b.readerId, upTo: last, rejected: [] });
        c.publish(topics.acks(b.readerId), ack, { qos: 1 });
      } catch {
        errors++;
      }
    });
    await c.subscribeAsync(topics.allReaders('events'), { qos: 1 });
    return { subscribed: true };
  },
  reset() {
    count = 0;
    firstAt = 0;
    lastAt = 0;
    return true;
  },
  stats() {
    return { count, firstAt, lastAt, errors };
  },
  async stop() {
    await client?.endAsync(true);
    client = null;
    db?.close();
    db = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
    return true;
  },
});
