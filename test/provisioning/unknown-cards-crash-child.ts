/**
 * Child process for the attribution crash test: opens the gateway database given as argv[2] and assigns
 * card argv[3] to staff argv[4], killing itself with SIGKILL right after the `visit.attributed` event
 * number argv[5] was written, i.e. in the middle of the one transaction of the re-attribution pass.
 */
import { CardRegistry } from '../../gateway/src/cards/registry.js';
import { SqliteCardStore } from '../../gateway/src/store/sqlite/cards.js';
import { SqliteOutbox } from '../../gateway/src/store/sqlite/outbox.js';
import { openDatabase } from '../../gateway/src/store/sqlite/db.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { systemClock } from '../../protocol/index.js';

const [dbPath, cardRef, staffRef, killAfter] = process.argv.slice(2);
if (!dbPath || !cardRef || !staffRef || !killAfter) throw new Error('usage: DB CARD STAFF KILL_AFTER');
const db = openDatabase(dbPath, sqliteMigrations);
const real = new SqliteOutbox({ db });
let n = 0;
const registry = new CardRegistry({
  store: new SqliteCardStore({
    db,
    clock: systemClock,
    outbox: {
      enqueue: (e, nowMs) => {
        const wrote = real.enqueue(e, nowMs);
        if (e.type === 'visit.attributed' && ++n >= Number(killAfter)) {
          process.stdout.write(`killing after ${n} attribution(s)\n`);
          process.kill(process.pid, 'SIGKILL');
        }
        return wrote;
      },
    },
  }),
  clock: systemClock,
});
registry.addCard({ cardRef, staffRef, actor: 'crash-child' });
process.stdout.write('finished without being killed\n');
