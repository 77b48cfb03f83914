import type pino from 'pino';
import type { GatewayCardKeys } from '../../../protocol/index.js';
import type { PgPool } from '../store/postgres/db.js';
import { insertVaultRows, vaultRowsExcept, type VaultRow } from '../store/postgres/card-vault.js';
import { CardUidVault } from './uid-vault.js';

/**
 * The sealed card UID vault on PostgreSQL (`store.engine: "postgres"`, issue 16): one vault shared by every
 * instance instead of a `card-uids.jsonl` per instance. The same seals as the file (to the gateway's own seal key,
 * keyed by the fleet pseudonym; never a raw UID in the database, its backups or a log). Reads stay synchronous
 * (the ingest learns, the config push builds lists, from memory): `learn` writes to memory at once and to
 * PostgreSQL in the background; `sync()` writes what is still pending and takes the other instances' rows. The
 * composition root calls `sync()` at start and before each card-list push.
 */
export class PgCardUidVault extends CardUidVault {
  private pending: VaultRow[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly known: string[] = [];

  constructor(
    private readonly pool: PgPool,
    keys: GatewayCardKeys,
    private readonly now: () => number,
    private readonly logger?: pino.Logger,
  ) {
    super('', keys);
  }

  /** Nothing to read synchronously: the other instances' rows come with `sync()`. */
  protected override refresh(): void {}

  protected override persist(lines: string): void {
    for (const line of lines.split('\n')) {
      if (!line) continue;
      const e = JSON.parse(line) as VaultRow;
      this.pending.push(e);
      this.known.push(e.c);
    }
    this.writing = this.writing
      .then(() => this.flush())
      .catch((err: unknown) => {
        this.logger?.warn({ err }, 'card UID vault: write to PostgreSQL failed; retried at the next sync');
      });
  }

  private async flush(): Promise<void> {
    const rows = this.pending;
    if (rows.length === 0) return;
    this.pending = [];
    try {
      await insertVaultRows(this.pool, rows, this.now());
    } catch (err) {
      this.pending.unshift(...rows);
      throw err;
    }
  }

  /** Writes what is pending, then opens the rows other instances (or the CLI) added. */
  async sync(): Promise<void> {
    await this.writing;
    await this.flush();
    const rows = await vaultRowsExcept(this.pool, this.known);
    this.take(rows);
    for (const r of rows) if (this.knows(r.c)) this.known.push(r.c);
  }

  /** Waits for background writes (a clean stop). */
  async settled(): Promise<void> {
    await this.writing;
    await this.flush().catch(() => undefined);
  }
}
