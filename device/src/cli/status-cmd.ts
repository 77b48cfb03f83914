import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { DeviceSettings } from '../config.js';

/** What `visittag-device status` shows: read from the journal (read-only) and the runtime status file. */
export interface OfflineStatus {
  readerId: string;
  journal: {
    path: string;
    depth: number;
    capacity: number;
    lastSeq: number;
    lastAckedSeq: number;
    oldestUnacked: { seq: number; wallMs: number; synced: boolean } | null;
    quarantinedRows: number;
    openVisits: number;
  } | null;
  configVersion: number;
  clock: { synced: boolean | null };
  service: {
    running: boolean;
    readerAttached: boolean | null;
    connected: boolean | null;
    statusAt: number | null;
  };
}

export function statusFilePath(runtimeDir: string, readerId: string): string {
  return join(runtimeDir, `visittag-device-${readerId}.status.json`);
}

type JournalView = NonNullable<OfflineStatus['journal']>;

function readJournal(s: DeviceSettings): { journal: JournalView; configVersion: number } | null {
  const path = join(s.dataDir, 'journal.db');
  if (!existsSync(path)) return null;
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const meta = (k: string): string | undefined =>
      db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?').get(k)?.value;
    const depth = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM events').get()?.n ?? 0;
    const oldestRow = db
      .prepare<[], { seq: number; event_json: string }>(
        'SELECT seq, event_json FROM events ORDER BY seq LIMIT 1',
      )
      .get();
    let oldest: { seq: number; wallMs: number; synced: boolean } | null = null;
    if (oldestRow) {
      try {
        const e = JSON.parse(oldestRow.event_json) as { time?: { wallMs?: number; synced?: boolean } };
        oldest = { seq: oldestRow.seq, wallMs: e.time?.wallMs ?? 0, synced: e.time?.synced ?? false };
      } catch {
        oldest = { seq: oldestRow.seq, wallMs: 0, synced: false };
      }
    }
    const states = db.prepare<[], { state_json: string }>('SELECT state_json FROM card_state').all();
    const open = states.filter((r) => r.state_json.includes('"open":{')).length;
    let configVersion = 0;
    try {
      configVersion = (JSON.parse(meta('device_config') ?? '{}') as { version?: number }).version ?? 0;
    } catch {
      configVersion = 0;
    }
    const journal: JournalView = {
      path,
      depth,
      capacity: s.journal.capacity,
      lastSeq: Number(meta('last_seq') ?? 0),
      lastAckedSeq: Number(meta('last_acked_seq') ?? 0),
      oldestUnacked: oldest,
      quarantinedRows: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM quarantine').get()?.n ?? 0,
      openVisits: open,
    };
    return { journal, configVersion };
  } finally {
    db.close();
  }
}

export function offlineStatus(
  s: DeviceSettings,
  runtimeDir: string,
  clockSynced: boolean | null,
): OfflineStatus {
  const j = readJournal(s);
  let service: OfflineStatus['service'] = {
    running: false,
    readerAttached: null,
    connected: null,
    statusAt: null,
  };
  const file = statusFilePath(runtimeDir, s.readerId);
  try {
    const st = JSON.parse(readFileSync(file, 'utf8')) as {
      pid?: number;
      running?: boolean;
      readerAttached?: boolean;
      connected?: boolean;
      writtenAt?: number;
    };
    let alive = false;
    if (st.running && typeof st.pid === 'number') {
      try {
        process.kill(st.pid, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    service = {
      running: alive,
      readerAttached: alive ? (st.readerAttached ?? null) : null,
      connected: alive ? (st.connected ?? null) : null,
      statusAt: st.writtenAt ?? null,
    };
  } catch {
    // no status file: the service has not run since boot
  }
  return {
    readerId: s.readerId,
    journal: j?.journal ?? null,
    configVersion: j?.configVersion ?? 0,
    clock: { synced: clockSynced },
    service,
  };
}

export function formatStatus(st: OfflineStatus): string {
  const lines = [`reader ${st.readerId}`];
  const j = st.journal;
  if (!j) lines.push('journal: none yet (the device has not run)');
  else {
    lines.push(`journal: ${j.path}`);
    lines.push(
      `  unacknowledged events: ${j.depth} of ${j.capacity}${j.depth >= j.capacity ? '  ** FULL: taps are refused **' : ''}`,
    );
    lines.push(
      `  oldest unacked: ${j.oldestUnacked ? `seq ${j.oldestUnacked.seq} at ${new Date(j.oldestUnacked.wallMs).toISOString()}${j.oldestUnacked.synced ? '' : ' (clock was not synced)'}` : 'none'}`,
    );
    lines.push(`  last seq: ${j.lastSeq}, last acked: ${j.lastAckedSeq}, open visits: ${j.openVisits}`);
    if (j.quarantinedRows > 0)
      lines.push(`  quarantined rows: ${j.quarantinedRows} (see the quarantine table)`);
  }
  lines.push(`config version: ${st.configVersion}`);
  lines.push(
    `clock: ${st.clock.synced === null ? 'unknown' : st.clock.synced ? 'synced (NTP)' : 'NOT synced'}`,
  );
  const s = st.service;
  lines.push(
    s.running
      ? `service: running; reader ${s.readerAttached ? 'attached' : 'NOT attached'}; gateway ${s.connected ? 'connected' : 'NOT connected'}`
      : 'service: not running (reader state unknown)',
  );
  return lines.join('\n');
}
