import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { SqliteCardStore } from '../../gateway/src/store/sqlite/cards.js';
import { SqliteEnrollmentStore } from '../../gateway/src/store/sqlite/enrollment.js';
import { SqliteFleetStore } from '../../gateway/src/store/sqlite/fleet.js';
import { createSqliteIngestStore } from '../../gateway/src/store/sqlite/ingest-store.js';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import { SqliteVisitStore } from '../../gateway/src/store/sqlite/visits.js';
import { SqliteScopeReader } from '../../gateway/src/store/sqlite/scope.js';
import { careMigrations } from '../../gateway/src/store/sqlite/care-migrations.js';
import { createSqliteCareStore } from '../../gateway/src/store/sqlite/care.js';
import { describeCardLifecycleStoreContract } from './store-card-lifecycle.contract.js';
import { describeCardStoreContract } from './store-cards.contract.js';
import { describeCareStoreContract, putVisitRow } from './store-care.contract.js';
import { describeEnrollmentStoreContract } from './store-enrollment.contract.js';
import { describeFleetStoreContract } from './store-fleet.contract.js';
import { describeOutboxStoreContract } from './store-outbox.contract.js';
import { describeReaderRowsContract } from './store-readers.contract.js';
import { describeVisitStoreContract } from './store-visits.contract.js';

// Every store port's contract over the SQLite adapter (a real file, the real migration list). The
// PostgreSQL adapter runs the same suites from its own test file with its own factories.
function tempDb() {
  const dir = mkdtempSync(join(tmpdir(), 'vt-store-'));
  const db = openDatabase(join(dir, 'gateway.db'), sqliteMigrations);
  return {
    db,
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}

describeOutboxStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  const outbox = new SqliteOutbox({ db });
  return Promise.resolve({
    outbox,
    seed: (events, nowMs) => {
      db.transaction(() => events.forEach((e) => outbox.enqueue(e, nowMs)))();
      return Promise.resolve();
    },
    close,
  });
});

describeEnrollmentStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({ store: new SqliteEnrollmentStore(db), close });
});

describeFleetStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({ store: new SqliteFleetStore(db), close });
});

const sqlOn =
  (db: ReturnType<typeof tempDb>['db']) =>
  (text: string, params: readonly unknown[] = []): Promise<Record<string, unknown>[]> => {
    const st = db.prepare(text);
    if (st.reader) return Promise.resolve(st.all(...params) as Record<string, unknown>[]);
    st.run(...params);
    return Promise.resolve([]);
  };

describeCardStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({ cards: new SqliteCardStore({ db }), sql: sqlOn(db), close });
});

describeCardLifecycleStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  const clock = { ms: 0 };
  const store = new SqliteCardStore({ db, clock: { now: () => clock.ms } });
  return Promise.resolve({ store, clock, sql: sqlOn(db), close });
});

describeVisitStoreContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({ visits: new SqliteVisitStore(db), sql: sqlOn(db), close });
});

describeReaderRowsContract('sqlite', () => {
  const { db, close } = tempDb();
  return Promise.resolve({ store: createSqliteIngestStore(db), sql: sqlOn(db), close });
});

describeCareStoreContract('sqlite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vt-store-care-'));
  const db = openDatabase(join(dir, 'gateway.db'), [...sqliteMigrations, ...careMigrations]);
  const outbox = new SqliteOutbox({ db });
  return Promise.resolve({
    store: createSqliteCareStore({ db, enqueue: (e, nowMs) => outbox.enqueue(e, nowMs) }),
    putVisit: (v) => {
      putVisitRow((text, params) => db.prepare(text).run(...params), v);
      return Promise.resolve();
    },
    outboxKeys: () =>
      Promise.resolve(db.prepare('SELECT idempotency_key FROM outbox ORDER BY id').pluck().all() as string[]),
    day: (() => {
      const scoped = new SqliteScopeReader(db);
      return {
        visits: (s, from, to, limit) => scoped.visitsStartedBetween(s, from, to, limit),
        clients: (s) => scoped.clients(s),
      };
    })(),
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  });
});
