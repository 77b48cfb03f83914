import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CardRef, GatewayCardKeys, SafeId } from '../../../protocol/index.js';
import {
  loadSubcommandSettings,
  parseSubcommand,
  type CliGateway,
  type OpenGateway,
} from '../cli-gateway.js';
import { planCardImport } from './csv-import.js';
import { CARD_UID_VAULT_FILE, CardUidVault } from './uid-vault.js';
import { PgCardUidVault } from './pg-uid-vault.js';
import { withoutUidLine } from './pg-push.js';
import { openPgPool } from '../store/postgres/db.js';
import { PgCardStore } from '../store/postgres/cards.js';
import { activeCardRefsOf } from '../store/sqlite/cards.js';
import { assignRefusal } from './routes.js';
import { EXIT } from '../../../runtime/cli.js';
import { onPostgres, pgImportCards, withPgCardLifecycle, withPgCards } from '../cli/pg-offline.js';
import { applyLiveOrOffline, type AdminRequestSpec } from '../admin/client.js';
import type { GatewaySettings } from '../config.js';
import type { Awaitable, CardAssignResult, CardStore } from '../store/ports.js';
import { isoToMs } from './routes.js';

type Out = (line: string) => void;

/** What `cards assign|unknown` use: the local file's registry, or PostgreSQL's on a postgres config. */
interface CliCards {
  cards: Pick<CardStore, 'get' | 'unknown'>;
  addCard(c: { cardRef: string; staffRef: string; actor: string }): Awaitable<CardAssignResult>;
}

export const CARDS_HELP = `visittag-gateway cards import FILE [--dry-run] [--config FILE]
visittag-gateway cards unknown [--json] [--config FILE]
visittag-gateway cards uids [--config FILE]
visittag-gateway cards assign CARD_REF --staff REF [--reassign] [--config FILE]
visittag-gateway cards import FILE --full [--config FILE]
visittag-gateway cards revoke CARD_REF [--reason TEXT] [--config FILE]
visittag-gateway cards reinstate CARD_REF [--reason TEXT] [--config FILE]
visittag-gateway cards validity CARD_REF --from DATE|- --to DATE|- [--reason TEXT] [--config FILE]
visittag-gateway cards replace OLD_CARD_REF --new NEW_CARD_REF [--reason TEXT] [--config FILE]

import: FILE is CSV (comma or semicolon) with a header naming "staff" and "uid" (hex card UID as the
badge system prints it; pseudonymised with the fleet key, never stored raw) or "card_ref" (c1_…).
Good rows are imported (a card already known is re-assigned to the staff member given from now on),
bad rows are listed with their line number and reason. Exit code 0 when every row was good, 1 when
some were bad, 65 when no row was usable, 66 when the file could not be read, 64 for a usage error.
uids: how many active cards have no known UID (known only by c1_): readers on the sealed scheme cannot
        be given them; the line says how to fix it (import the UIDs).
unknown: cards tapped but not in the registry, with where (reader, client) and when they were seen;
        --json prints the same document as GET /api/cards/unknown.
assign: registers an unknown card for a staff member. Both assign and import resolve the card's
earlier taps: its visits recorded while it was unknown get the staff member, its unknown-card
anomalies are marked resolved, and the planning backend gets one visit.attributed event per visit
(or refused tap). A card registered to someone else (or revoked) is refused unless --reassign is
given; even then its earlier visits keep the staff member they have.
import --full: the file is the COMPLETE list of cards: every registered card missing from it is
withdrawn (revoked) after the import (refused for a file with no good row).
revoke / reinstate: the card is refused (or accepted again) from now on. validity: the card is valid
from DATE (YYYY-MM-DD, midnight UTC, or an ISO time) and until DATE (exclusive); "-" leaves that end
open. A tap outside the window counts as a revoked card. replace: a lost card; the new card goes to
the same staff member (same validity), the old one is revoked; the staff member's visits are kept.
These changes go through the running gateway, which pushes the card lists to every connected reader
at once (its next tap of a revoked card gets the rejected feedback); with no gateway running they
are made in the database and pushed when it starts. Every change is in the audit log.`;

export async function cardsCommand(
  argv: string[],
  out: Out,
  err: Out,
  withGateway: OpenGateway,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      'dry-run': { type: 'boolean' },
      staff: { type: 'string' },
      reassign: { type: 'boolean' },
      full: { type: 'boolean' },
      reason: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      new: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    CARDS_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [sub, arg] = positionals;
  const lifecycle = ['revoke', 'reinstate', 'validity', 'replace'].includes(sub ?? '');
  const known = sub === 'import' || sub === 'assign' || sub === 'unknown' || sub === 'uids' || lifecycle;
  if (
    !known ||
    (sub !== 'unknown' && sub !== 'uids' && !arg) ||
    (sub === 'assign' && !values.staff) ||
    (sub === 'validity' && (values.from === undefined || values.to === undefined)) ||
    (sub === 'replace' && !values.new)
  ) {
    err(CARDS_HELP);
    return EXIT.usage;
  }
  const loaded = loadSubcommandSettings(values.config, err);
  if (typeof loaded === 'number') return loaded;
  const configFile = loaded.file;
  if (lifecycle) {
    if (
      !CardRef.safeParse(arg).success ||
      (values.new !== undefined && !CardRef.safeParse(values.new).success)
    ) {
      err('CARD_REF must be a c1_ reference (c1_ + 32 hex digits), as `cards unknown` lists it');
      return EXIT.usage;
    }
    const reason = values.reason ?? null;
    const ctx = { config: loaded.config, configFile, withGateway, out, err };
    const ref = arg ?? '';
    if (sub === 'revoke') {
      return live(
        ctx,
        `/api/cards/${ref}/revoke`,
        { ...(reason ? { reason } : {}) },
        `card ${ref} revoked`,
        (l) => l.revoke(ref, 'cli', reason),
      );
    }
    if (sub === 'reinstate') {
      return live(
        ctx,
        `/api/cards/${ref}/reinstate`,
        { ...(reason ? { reason } : {}) },
        `card ${ref} reinstated`,
        (l) => l.reinstate(ref, 'cli', reason),
      );
    }
    if (sub === 'validity') {
      const when = (v: string | undefined): string | null | undefined =>
        v === '-' ? null : v !== undefined && Number.isFinite(Date.parse(v)) ? v : undefined;
      const validFrom = when(values.from);
      const validTo = when(values.to);
      if (validFrom === undefined || validTo === undefined) {
        err('--from and --to take a date (YYYY-MM-DD), an ISO time with offset, or "-" for an open end');
        return EXIT.usage;
      }
      return live(
        ctx,
        `/api/cards/${ref}/validity`,
        { validFrom, validTo, ...(reason ? { reason } : {}) },
        `card ${ref} valid from ${validFrom ?? 'any time'} until ${validTo ?? 'further notice'}`,
        (l) => l.setValidity(ref, isoToMs(validFrom), isoToMs(validTo), 'cli', reason),
      );
    }
    const newRef = values.new ?? '';
    return live(
      ctx,
      `/api/cards/${ref}/replace`,
      { newCardRef: newRef, ...(reason ? { reason } : {}) },
      `card ${ref} replaced by ${newRef} (same staff member; the old card is revoked)`,
      (l) => l.replace(ref, newRef, 'cli', reason),
    );
  }
  if (sub === 'uids') return cardsWithoutUid(loaded.config, out);
  // store.engine postgres: the card registry the instances share (issue 14), not the local SQLite file
  const withCards = (fn: (c: CliCards) => Promise<number>): Promise<number> =>
    onPostgres(loaded.config)
      ? withPgCards(loaded.config, (pg) =>
          fn({ cards: pg, addCard: (c) => pg.assign({ ...c, nowMs: Date.now() }) }),
        )
      : withGateway(loaded.config, (gw) => fn({ cards: gw.cards, addCard: (c) => gw.registry.addCard(c) }));
  if (sub === 'unknown') return withCards((c) => listUnknown(c, out, values.json === true));
  if (sub === 'assign') {
    return withCards((c) =>
      assign(
        c,
        { cardRef: arg ?? '', staffRef: values.staff ?? '', reassign: values.reassign === true },
        out,
        err,
      ),
    );
  }
  const file = arg ?? '';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    err(`cannot read ${file}: ${(e as Error).message}`);
    return EXIT.noInput;
  }
  const plan = planCardImport(text, loaded.config.fleetKey);
  for (const b of plan.bad) out(`line ${b.line}: ${b.reason}`);
  let resolved = { cards: 0, visits: 0, refusedTaps: 0 };
  if (!values['dry-run'] && plan.good.length) {
    const rows = plan.good.map((r) => ({ cardRef: r.cardRef, staffRef: r.staffRef, actor: 'cards-import' }));
    // One transaction for the whole file: all good rows or none (on PostgreSQL: the shared registry).
    let results: readonly CardAssignResult[] = [];
    if (onPostgres(loaded.config)) results = await pgImportCards(loaded.config, rows, Date.now());
    else {
      await withGateway(loaded.config, (gw) => {
        results = gw.registry.addCards(rows);
        return 0;
      });
    }
    const acc = { cards: 0, visits: 0, refusedTaps: 0 };
    for (const a of results) {
      if (a.attributed.visits + a.attributed.refusedTaps > 0) acc.cards++;
      acc.visits += a.attributed.visits;
      acc.refusedTaps += a.attributed.refusedTaps;
    }
    resolved = acc;
    // the UIDs the file named, sealed, for the card lists of sealed-v1 readers (docs/security.md "Key exposure")
    const uids = plan.good.flatMap((r) => (r.uid ? [r.uid] : []));
    if (uids.length) {
      const pool = pgPoolOf(loaded.config);
      if (pool) {
        // store.engine postgres: the vault the instances share
        const vault = new PgCardUidVault(pool, new GatewayCardKeys(loaded.config.fleetKey), Date.now);
        try {
          await vault.sync();
          vault.learn(uids);
          await vault.sync();
        } finally {
          await pool.end();
        }
      } else {
        new CardUidVault(
          join(loaded.config.dataDir, CARD_UID_VAULT_FILE),
          new GatewayCardKeys(loaded.config.fleetKey),
        ).learn(uids);
      }
    }
  }
  const verb = values['dry-run'] ? 'would import' : 'imported';
  out(
    `${verb} ${plan.good.length} card(s); ${plan.bad.length} bad row(s)${plan.bad.length ? ' listed above (fix them and import the file again: good rows are idempotent)' : ''}`,
  );
  if (resolved.cards > 0) out(resolvedLine(resolved.cards, resolved.visits, resolved.refusedTaps));
  if (!plan.good.length && plan.bad.length) return EXIT.data;
  if (values.full && !values['dry-run']) {
    const keep = plan.good.map((r) => r.cardRef);
    const code = await applyLiveOrOffline({
      config: loaded.config,
      configFile,
      request: { method: 'POST', path: '/api/cards/withdraw-missing', body: { keep } },
      live: (body) => [withdrawnLine(body as { withdrawn: string[] })],
      offline: async () => {
        let line = '';
        const run = async (l: Lifecycle) => {
          line = withdrawnLine(await l.withdrawMissing(keep, 'cards-import'));
          return 0;
        };
        if (onPostgres(loaded.config)) await withPgCardLifecycle(loaded.config, run);
        else await withGateway(loaded.config, (gw) => run(gw.cardLifecycle));
        return [line];
      },
      offlineNote: offlineNoteOf(loaded.config, 'withdrawn'),
      out,
      err,
    });
    if (code !== 0) return code;
  }
  return plan.bad.length ? 1 : 0;
}

const resolvedLine = (cards: number, visits: number, refused: number): string =>
  `resolved earlier taps of ${cards} card(s) seen before as unknown: ${visits} visit(s) attributed, ` +
  `${refused} refused tap(s) reported (visit.attributed events queued for the planning backend)`;

/** Opens the gateway's database (not its broker or API) for a one-off command. */
async function listUnknown(gw: CliCards, out: Out, json: boolean): Promise<number> {
  const cards = await gw.cards.unknown(200);
  if (json) {
    out(JSON.stringify({ cards }, null, 2));
    return 0;
  }
  if (!cards.length) {
    out('no unknown cards');
    return 0;
  }
  for (const c of cards) {
    const where = c.seenAt
      .map((s) => `${s.readerId} (client ${s.clientRef ?? '-'}, ${s.taps}x, last ${iso(s.lastSeenMs)})`)
      .join('; ');
    out(
      `${c.cardRef}  ${c.taps} tap(s), first ${iso(c.firstSeenMs)}, last ${iso(c.lastSeenMs)}  at ${where}`,
    );
  }
  return 0;
}

async function assign(
  gw: CliCards,
  a: { cardRef: string; staffRef: string; reassign: boolean },
  out: Out,
  err: Out,
): Promise<number> {
  if (!CardRef.safeParse(a.cardRef).success) {
    err('CARD_REF must be a c1_ reference (c1_ + 32 hex digits), as `cards unknown` lists it');
    return EXIT.usage;
  }
  if (!SafeId.safeParse(a.staffRef).success) {
    err('--staff must use only letters, digits, ".", "_" and "-"');
    return EXIT.usage;
  }
  const refusal = assignRefusal(await gw.cards.get(a.cardRef), a.staffRef, a.reassign);
  if (refusal) {
    err(refusal);
    return 1;
  }
  const r = await gw.addCard({ cardRef: a.cardRef, staffRef: a.staffRef, actor: 'cli' });
  out(`card ${r.cardRef} → ${r.staffRef} (${r.registry})`);
  const { visits, refusedTaps } = r.attributed;
  out(
    visits + refusedTaps > 0
      ? resolvedLine(1, visits, refusedTaps)
      : 'no earlier unattributed taps of this card (nothing new for the planning backend)',
  );
  return 0;
}

const iso = (ms: number): string => new Date(ms).toISOString();

const withdrawnLine = (r: { withdrawn: string[] }): string =>
  r.withdrawn.length
    ? `withdrew ${r.withdrawn.length} card(s) missing from the full list: ${r.withdrawn.join(', ')}`
    : 'no registered card is missing from the full list';

type Lifecycle = CliGateway['cardLifecycle'];

/** Where an offline lifecycle change went and when readers hear of it. */
const offlineNoteOf = (config: GatewaySettings, what: string): string =>
  onPostgres(config)
    ? `${what} in PostgreSQL; running instances use it from their next tap, and the readers' card lists are pushed at the next card-list tick (within a minute)`
    : `${what} in the database; pushed to the readers when it starts`;

/** A lifecycle change through the running gateway (pushed to readers at once), else in the database. */
async function live(
  c: { config: GatewaySettings; configFile: string; withGateway: OpenGateway; out: Out; err: Out },
  path: string,
  body: unknown,
  done: string,
  offline: (l: Lifecycle) => Promise<object>,
): Promise<number> {
  const request: AdminRequestSpec = { method: 'POST', path, body };
  const pushedLine = (b: unknown): string => {
    const p = (b as { pushed?: { pushed: string[]; failed: unknown[] } | null }).pushed;
    if (!p) return '';
    return `; pushed to ${p.pushed.length} reader(s)${p.failed.length ? `, ${p.failed.length} failed (retried)` : ''}`;
  };
  const unchanged = (b: unknown): boolean => (b as { changed?: boolean }).changed === false;
  return applyLiveOrOffline({
    config: c.config,
    configFile: c.configFile,
    request,
    live: (b) => [
      unchanged(b) ? `${done} already; nothing changed` : `${done} by the running gateway${pushedLine(b)}`,
    ],
    offline: async () => {
      let line = '';
      const run = async (l: Lifecycle) => {
        const r = await offline(l);
        line = unchanged(r) ? `${done} already; nothing changed` : done;
        return 0;
      };
      // on a postgres config: the shared database (cli/pg-offline.ts)
      if (onPostgres(c.config)) await withPgCardLifecycle(c.config, run);
      else await c.withGateway(c.config, (gw) => run(gw.cardLifecycle));
      return [line];
    },
    offlineNote: offlineNoteOf(c.config, 'changed'),
    out: c.out,
    err: c.err,
  });
}

const pgPoolOf = (c: GatewaySettings) =>
  c.store?.engine === 'postgres' ? openPgPool({ url: c.store.url, max: 2 }) : null;

/** `cards uids`: active cards whose UID no vault holds (sealed readers cannot be given them), with the fix. */
async function cardsWithoutUid(config: GatewaySettings, out: Out): Promise<number> {
  const keys = new GatewayCardKeys(config.fleetKey);
  const pool = pgPoolOf(config);
  let active: string[] = [];
  let missing: number;
  if (pool) {
    try {
      const vault = new PgCardUidVault(pool, keys, Date.now);
      await vault.sync();
      active = await new PgCardStore(pool).refs('active');
      missing = vault.withoutUid(active);
    } finally {
      await pool.end();
    }
  } else {
    const file = join(config.dataDir, 'gateway.db');
    if (!existsSync(file)) {
      out(`no gateway database at ${file}`);
      return 1;
    }
    active = activeCardRefsOf(file);
    missing = new CardUidVault(join(config.dataDir, CARD_UID_VAULT_FILE), keys).withoutUid(active);
  }
  out(missing > 0 ? withoutUidLine(missing) : `every active card's UID is known (${active.length} card(s))`);
  return 0;
}
