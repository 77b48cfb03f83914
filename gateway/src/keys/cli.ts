/** `visittag-gateway keys rotate …`: fleet-key (pseudonym) rotation (issue 16, docs/security.md). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayCardKeys, MIN_FLEET_KEY_BYTES } from '../../../protocol/index.js';
import { EXIT } from '../../../runtime/cli.js';
import { callRunningGateway } from '../admin/client.js';
import { CARD_UID_VAULT_FILE, CardUidVault } from '../cards/uid-vault.js';
import { loadSubcommandSettings, parseSubcommand } from '../cli-gateway.js';
import type { GatewaySettings } from '../config.js';
import { SqliteAuditStore } from '../store/sqlite/audit.js';
import { openDatabase } from '../store/sqlite/db.js';
import { SqliteKeyRotationStore } from '../store/sqlite/keys.js';
import { sqliteMigrations } from '../store/sqlite/migrations.js';
import { applyRotation, finishVault, planRotation, stageVault } from './rotate.js';

type Out = (line: string) => void;

export const KEYS_HELP = `visittag-gateway keys rotate --new-fleet-key-file FILE [--drop-unmapped] [--dry-run] [--config FILE]

Replaces the fleet key (the key that turns card UIDs into pseudonyms) with the one in FILE, with the gateway
stopped (refused while it runs), on SQLite (refused on PostgreSQL: not built there). In one transaction: every card
whose UID the card vault holds is mapped from its old pseudonym to the new one, the card registry is rewritten,
visits without a staff member move to the new pseudonym, the rotation is audited; then the vault is re-sealed to
the new key. Cards whose UID the vault lacks are listed and the rotation is refused, unless --drop-unmapped
(they are revoked; import their UIDs and reinstate them to use them again). Reports stay the same: visits keep
their staff member, and taps under the old key are mapped to the same card.
Afterwards: set fleetKey in the config to the new key and put the old one in retiredFleetKeys, start the
gateway, provision every reader again (readers enroll --reader ID), then remove retiredFleetKeys.
docs/security.md "Fleet-key rotation".`;

/**
 * Why `run` must not start on this config: its fleetKey was retired by a rotation recorded in the database (the
 * vault is sealed to the new key and the registry names cards under it). Null when it may (or on PostgreSQL, or
 * before the first start).
 */
export function staleFleetKeyProblem(config: GatewaySettings): string | null {
  if (config.store?.engine === 'postgres') return null;
  const file = join(config.dataDir, 'gateway.db');
  if (!existsSync(file)) return null;
  // before the gateway starts: nobody else has it open; a file of an earlier version gets the missing steps
  const db = openDatabase(file, sqliteMigrations);
  try {
    const keys = new SqliteKeyRotationStore(db);
    const keyId = new GatewayCardKeys(config.fleetKey).keyId;
    if (!keys.retiredKeyIds().has(keyId)) return null;
    const last = keys.lastRotation();
    return (
      `the config's fleetKey (key ${keyId}) was retired by visittag-gateway keys rotate: set "fleetKey" to the new ` +
      `key${last ? ` (key ${last.newKeyId})` : ''} and put the old one in "retiredFleetKeys" (docs/security.md "Fleet-key rotation")`
    );
  } finally {
    db.close();
  }
}

export async function keysCommand(
  argv: string[],
  out: Out,
  err: Out,
  now: () => number = Date.now,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      'new-fleet-key-file': { type: 'string' },
      'drop-unmapped': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    KEYS_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const keyFile = v['new-fleet-key-file'];
  if (parsed.positionals[0] !== 'rotate' || parsed.positionals.length !== 1 || !keyFile) {
    err(KEYS_HELP);
    return EXIT.usage;
  }
  const loaded = loadSubcommandSettings(v.config, err);
  if (typeof loaded === 'number') return loaded;
  const { config, file: configFile } = loaded;
  if (config.store?.engine === 'postgres') {
    err(
      'keys rotate is built for SQLite only; with store.engine "postgres" the fleet key cannot be rotated yet ' +
        '(not built: docs/security.md "Fleet-key rotation"). Keep the fleet key, and retire a lost reader by ' +
        'replacing it (readers replace OLD_READER_ID): a reader on the sealed scheme holds no fleet key.',
    );
    return EXIT.config;
  }
  let newKey: string;
  try {
    newKey = readFileSync(keyFile, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    err(`cannot read ${keyFile}: ${(e as Error).message}`);
    return EXIT.noInput;
  }
  if (Buffer.byteLength(newKey) < MIN_FLEET_KEY_BYTES) {
    err(`the new fleet key in ${keyFile} is shorter than ${MIN_FLEET_KEY_BYTES} bytes`);
    return EXIT.data;
  }
  const oldKeys = new GatewayCardKeys(config.fleetKey);
  const newKeys = new GatewayCardKeys(newKey);
  const dbFile = join(config.dataDir, 'gateway.db');
  const vaultFile = join(config.dataDir, CARD_UID_VAULT_FILE);
  if (!existsSync(dbFile)) {
    err(`no gateway database at ${dbFile}`);
    return EXIT.failure;
  }
  const running = await callRunningGateway(config, { method: 'GET', path: '/healthz' }, { configFile });
  if (running.kind !== 'not-running') {
    err(
      `the gateway is running (${running.kind === 'ok' ? running.url : 'it answered'}): stop it first ` +
        '(systemctl stop visittag-gateway), then rotate, then start it with the new key',
    );
    return EXIT.failure;
  }
  const next = [
    `next: in ${configFile} set "fleetKey" to the key in ${keyFile} and add the old key to "retiredFleetKeys";`,
    'start the gateway; provision every reader again (visittag-gateway readers enroll --reader ID);',
    'when every reader is provisioned again, remove "retiredFleetKeys" (docs/security.md "Fleet-key rotation")',
  ];
  const db = openDatabase(dbFile, sqliteMigrations); // the gateway is stopped (checked above)
  const keys = new SqliteKeyRotationStore(db);
  try {
    const last = keys.lastRotation();
    if (last?.newKeyId === newKeys.keyId) {
      // the same rotation again (after a crash between the transaction and the vault's move): finish it
      const moved = finishVault(vaultFile);
      out(
        `already rotated to key ${newKeys.keyId}${moved ? '; the re-sealed card vault is now in place' : ''}`,
      );
      next.forEach((l) => out(l));
      return EXIT.ok;
    }
    if (newKeys.keyId === oldKeys.keyId) {
      err('the new fleet key is the one in the config: nothing to rotate');
      return EXIT.data;
    }
    if (keys.retiredKeyIds().has(oldKeys.keyId)) {
      err(
        `the config's fleetKey (key ${oldKeys.keyId}) was retired by an earlier rotation: set fleetKey to the ` +
          'key that rotation introduced first',
      );
      return EXIT.config;
    }
    const vault = new CardUidVault(vaultFile, oldKeys).all();
    const plan = planRotation(keys, vault, oldKeys, newKeys);
    out(
      `fleet key ${plan.oldKeyId} -> ${plan.newKeyId}: ${plan.mapped.size} card(s) with a known UID are mapped, ` +
        `${plan.unmapped.length} registered card(s) have no UID in the vault`,
    );
    if (plan.unmapped.length) {
      for (const c of plan.unmapped)
        out(`  no UID: ${c.cardRef} (staff ${c.staffRef}${c.revoked ? ', revoked' : ''})`);
      if (!v['drop-unmapped']) {
        err(
          `refused: ${plan.unmapped.length} card(s) above cannot be mapped. Import their UIDs first ` +
            '(visittag-gateway cards import FILE, CSV staff,uid), or give --drop-unmapped to revoke them',
        );
        return EXIT.failure;
      }
    }
    if (v['dry-run']) {
      out('dry run: nothing changed');
      return EXIT.ok;
    }
    stageVault(vaultFile, newKeys, plan.uids);
    const audit = new SqliteAuditStore(db);
    const nowMs = now();
    const actor = `cli:${process.env.USER ?? 'unknown'}`;
    const r = applyRotation(keys, plan, {
      nowMs,
      actor,
      dropUnmapped: v['drop-unmapped'] === true,
      audit: (details) =>
        audit.append({
          atMs: nowMs,
          actor,
          action: 'keys.rotate',
          target: 'fleet-key',
          before: { keyId: plan.oldKeyId },
          after: details,
          reason: null,
        }),
    });
    finishVault(vaultFile);
    out(
      `rotated: ${r.mapped} pseudonym(s) mapped, ${r.cards} registered card(s) rewritten, ` +
        `${r.unattributedVisits} visit(s) without a staff member and ${r.anomalies} open anomaly(ies) moved, ` +
        `${r.dropped} card(s) revoked; the card vault is re-sealed to the new key`,
    );
    next.forEach((l) => out(l));
    return EXIT.ok;
  } catch (e) {
    err((e as Error).message);
    return EXIT.failure;
  } finally {
    db.close();
  }
}
