import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import {
  GatewayCardKeys,
  pseudonymiseCard,
  readerCardRef,
  type ReaderCardKeys,
} from '../../protocol/index.js';
import { main as gatewayMain } from '../../gateway/main.js';
import {
  ADMIN_TOKEN,
  adminGet,
  dbOf,
  storedSeqs,
  tempDir,
  testConfig,
  trackDataDir,
  waitUntil,
} from '../gateway/helpers.js';
import {
  deviceCli,
  RunningDevice,
  simulatedProvisionArgs,
  writeGatewayCliConfig,
} from '../provisioning/cli-child.js';

/**
 * Key exposure (issue 16, docs/security.md "Key exposure"): readers provisioned now hold their own card key
 * and the gateway's public seal key, never the fleet key. Real gateway (SQLite, embedded MQTT on loopback),
 * real `visittag-device provision` and `run` children with the simulated reader, real files.
 */
const FLEET = 'test-fleet-key-0123456789';
const UID = '04A1B2C3D4E5F6';
const UID2 = '04C0FFEE123456';
const UID3 = '04D00DFEED0042';

/** Every spelling of a UID that could sit in a file: hex either case, and the raw bytes. */
function uidForms(uid: string): Buffer[] {
  return [Buffer.from(uid), Buffer.from(uid.toLowerCase()), Buffer.from(uid, 'hex')];
}
function filesHolding(files: string[], uid: string): string[] {
  return files.filter((f) => {
    if (!existsSync(f)) return false;
    const bytes = readFileSync(f);
    return uidForms(uid).some((form) => bytes.includes(form));
  });
}
const sqliteFiles = (db: string) => [db, `${db}-wal`, `${db}-shm`];
async function adminPost(
  gw: Gateway,
  path: string,
  body: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('key exposure: a stolen reader reveals no more than its own data (issue 16)', () => {
  const tmp = tempDir('vt-keys-');
  const gwDir = join(tmp.dir, 'gw');
  const logged: string[] = [];
  let gw: Gateway;
  const running: RunningDevice[] = [];

  beforeAll(async () => {
    // the gateway logs at debug into memory, to show that no UID is ever logged
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    gw = createGateway({ config: testConfig(gwDir), logger: pino({ level: 'debug' }, sink) });
    trackDataDir(gw, gwDir);
    await gw.start();
  });
  afterAll(async () => {
    for (const d of running) await d.stop();
    await gw.stop();
    tmp.cleanup();
  });

  const provision = async (clientRef: string, name: string) => {
    const issued = await gw.enrollment.issue({ clientRef });
    const dir = join(tmp.dir, name);
    const cfg = join(dir, 'device.json');
    const data = join(dir, 'data');
    const p = await deviceCli(simulatedProvisionArgs(gw.adminUrl, issued.code, cfg, data));
    expect(p.code).toBe(0);
    return { readerId: issued.readerId, dir, cfg, data };
  };
  const start = async (cfg: string, dir: string) => {
    const dev = new RunningDevice(cfg, dir);
    running.push(dev);
    await dev.waitFor((l) => l.type === 'ready');
    return dev;
  };
  const storedCards = (readerId: string): string[] =>
    (
      dbOf(gw)
        .prepare('SELECT event_json FROM events WHERE reader_id = ? ORDER BY seq')
        .pluck()
        .all(readerId) as string[]
    ).map((j) => {
      const e = JSON.parse(j) as { card: string; sealedCard?: string };
      expect(e.sealedCard).toBeUndefined();
      return e.card;
    });

  it('sealed readers hold no fleet key; a stolen one computes neither the fleet pseudonym nor another reader’s references; taps land as the same cardRef as a fleet-key reader’s; no raw UID in a journal, the gateway database or a log', async () => {
    const a = await provision('home-a', 'a');
    const b = await provision('home-b', 'b');
    const configA = JSON.parse(readFileSync(a.cfg, 'utf8')) as {
      fleetKey?: string;
      cardKeys: ReaderCardKeys;
      mqtt: { password: string };
    };
    expect(configA.fleetKey).toBeUndefined();
    expect(configA.cardKeys.scheme).toBe('sealed-v1');
    expect(readFileSync(a.cfg, 'utf8')).not.toContain(FLEET);

    // A fleet-key reader, configured as every reader was before the sealed scheme (it keeps working).
    const legacyId = 'rdr-legacy-1';
    const { password } = await gw.registry.addReader({ readerId: legacyId, clientRef: 'home-l' });
    const legacyDir = join(tmp.dir, 'legacy');
    mkdirSync(legacyDir, { recursive: true });
    const legacyCfg = join(legacyDir, 'device.json');
    writeFileSync(
      legacyCfg,
      JSON.stringify({
        version: 1,
        readerId: legacyId,
        dataDir: join(legacyDir, 'data'),
        fleetKey: FLEET,
        mqtt: { url: `mqtt://127.0.0.1:${gw.mqttPort}`, username: legacyId, password },
        reader: { driver: 'simulated' },
        feedback: { driver: 'simulated' },
      }),
      { mode: 0o600 },
    );

    // Reader A is refused by the gateway for now: its taps get their feedback and stay in its journal.
    gw.registry.revokeReader(a.readerId);
    const devA = await start(a.cfg, a.dir);
    devA.send(`tap ${UID}`);
    await devA.waitFor((l) => l.type === 'tap' && l.seq === 1 && l.decision === 'start');
    devA.send(`tap ${UID2}`);
    await devA.waitFor((l) => l.type === 'tap' && l.seq === 2 && l.decision === 'start');
    await devA.stop();

    // The stolen reader: its config, journal (unsent taps, card states, pushed config) as files.
    const journalA = join(a.data, 'journal.db');
    expect(filesHolding([a.cfg, ...sqliteFiles(journalA)], UID)).toEqual([]);
    expect(filesHolding([a.cfg, ...sqliteFiles(journalA)], UID2)).toEqual([]);
    const jdb = new Database(journalA, { readonly: true });
    const unsent = (jdb.prepare('SELECT event_json FROM events ORDER BY seq').pluck().all() as string[]).map(
      (j) => JSON.parse(j) as { card: string; sealedCard: string },
    );
    const states = jdb.prepare('SELECT card, state_json FROM card_state').all() as { card: string }[];
    jdb.close();
    expect(unsent).toHaveLength(2);
    const refA = readerCardRef(UID, configA.cardKeys.readerKey);
    expect(unsent[0]?.card).toBe(refA);
    expect(unsent[0]?.sealedCard).toMatch(/^s1_/);
    expect(states.map((s) => s.card).sort()).toEqual(
      [refA, readerCardRef(UID2, configA.cardKeys.readerKey)].sort(),
    );

    // What the thief can compute from every secret in A's files, holding the card itself:
    const secrets = [configA.cardKeys.readerKey, configA.cardKeys.gatewayKey, configA.mqtt.password];
    const computable = new Set<string>();
    for (const s of secrets) {
      computable.add(pseudonymiseCard(UID, s).slice(3));
      computable.add(readerCardRef(UID, s).slice(3));
      // nor do they open the sealed cards in A's own journal (only the gateway's private key does)
      for (const e of unsent) expect(new GatewayCardKeys(s).unseal(e.sealedCard, a.readerId).ok).toBe(false);
    }
    const fleetRef = pseudonymiseCard(UID, FLEET);
    const gwKeys = new GatewayCardKeys(FLEET);
    const refB = gwKeys.readerRef(b.readerId, UID);
    expect(computable.has(fleetRef.slice(3))).toBe(false);
    expect(computable.has(refB.slice(3))).toBe(false);
    expect(refA).not.toBe(refB);

    // Back in service: A delivers its journal; B and the fleet-key reader tap the same card.
    gw.registry.restoreReader(a.readerId);
    const devA2 = await start(a.cfg, a.dir);
    await waitUntil(() => storedSeqs(gw, a.readerId).length === 2, 20_000);
    const devB = await start(b.cfg, b.dir);
    devB.send(`tap ${UID}`);
    const tapB = await devB.waitFor((l) => l.type === 'tap' && l.seq === 1);
    expect(tapB.card).toBe(refB); // B names the card with its own key
    const devL = await start(legacyCfg, legacyDir);
    devL.send(`tap ${UID}`);
    const tapL = await devL.waitFor((l) => l.type === 'tap' && l.seq === 1);
    expect(tapL.card).toBe(fleetRef);
    await waitUntil(() => storedSeqs(gw, b.readerId).length === 1, 20_000);
    await waitUntil(() => storedSeqs(gw, legacyId).length === 1, 20_000);

    // One card, one cardRef at the gateway, whichever scheme the reader is on.
    expect(storedCards(a.readerId)).toEqual([fleetRef, pseudonymiseCard(UID2, FLEET)]);
    expect(storedCards(b.readerId)).toEqual([fleetRef]);
    expect(storedCards(legacyId)).toEqual([fleetRef]);
    // the visits of the three readers carry it too (one open visit each)
    const visits = () =>
      dbOf(gw)
        .prepare('SELECT reader_id, card_ref FROM visits WHERE reader_id IN (?, ?, ?) ORDER BY reader_id')
        .all(a.readerId, b.readerId, legacyId) as { reader_id: string; card_ref: string }[];
    await waitUntil(() => visits().filter((v) => v.card_ref === fleetRef).length === 3, 10_000);
    expect(new Set(visits().map((v) => v.reader_id))).toEqual(new Set([a.readerId, b.readerId, legacyId]));
    for (const v of visits()) expect([fleetRef, pseudonymiseCard(UID2, FLEET)]).toContain(v.card_ref);

    // Card lists for sealed readers: UID was learned from the sealed taps, UID3 comes from a card import file.
    gw.registry.addCard({ cardRef: fleetRef, staffRef: 'nurse-1' });
    const csv = join(tmp.dir, 'cards.csv');
    writeFileSync(csv, `staff,uid\nnurse-3,${UID3}\n`);
    const cliOut: string[] = [];
    const imported = await gatewayMain(
      ['cards', 'import', csv, '--config', writeGatewayCliConfig(gw, gwDir, join(tmp.dir, 'gw-cli.json'))],
      (l) => cliOut.push(l),
      (l) => cliOut.push(l),
    );
    expect(cliOut.join('\n')).not.toContain(UID3);
    expect(imported).toBe(0);
    const push = async (readerId: string) => {
      await waitUntil(async () => {
        const v = (await adminGet(gw, `/api/readers/${readerId}`)).body as {
          status: { cardScheme?: string } | null;
        };
        return v.status?.cardScheme === 'sealed-v1';
      }, 20_000);
      const r = await adminPost(gw, `/api/readers/${readerId}/config`, { useAllowList: true });
      expect(r.status).toBe(202);
      await waitUntil(async () => {
        const v = (await adminGet(gw, `/api/readers/${readerId}`)).body as {
          status: { configVersion?: number; configError?: string | null } | null;
        };
        return v.status?.configVersion === 1 && v.status.configError === null;
      }, 20_000);
      const c = (await adminGet(gw, `/api/readers/${readerId}/config`)).body as {
        config: { allowList: string[]; revoked: string[] };
      };
      return c.config.allowList;
    };
    const listB = await push(b.readerId);
    expect(listB).toEqual([refB, gwKeys.readerRef(b.readerId, UID3)].sort());
    const listA = await push(a.readerId);
    expect(listA).toEqual([refA, readerCardRef(UID3, configA.cardKeys.readerKey)].sort());
    // B decides offline with its own list: UID2 is not on it
    devB.send(`tap ${UID2}`);
    const refused = await devB.waitFor((l) => l.type === 'tap' && l.seq === 2);
    expect(refused.decision).toBe('rejected');

    // The stolen reader again, now with its pushed allow-list in its journal: its own references only.
    await devA2.stop();
    const jdb2 = new Database(journalA, { readonly: true });
    const kept = JSON.parse(
      jdb2.prepare("SELECT value FROM meta WHERE key = 'device_config'").pluck().get() as string,
    ) as { allowList: string[] };
    jdb2.close();
    expect(kept.allowList).toEqual(listA);
    const fleetOfList = [fleetRef, pseudonymiseCard(UID3, FLEET)].map((r) => r.slice(3));
    for (const r of kept.allowList) {
      expect(fleetOfList).not.toContain(r.slice(3)); // not the fleet pseudonyms
      expect(listB).not.toContain(r); // nor B's references of the same cards
    }
    for (const uid of [UID, UID2, UID3]) {
      expect(filesHolding([a.cfg, ...sqliteFiles(journalA)], uid)).toEqual([]);
    }

    // No raw UID anywhere at the gateway: its database files, the sealed UID vault, its log (at debug).
    gw.flush();
    const gwFiles = [...sqliteFiles(join(gwDir, 'gateway.db')), join(gwDir, 'card-uids.jsonl')];
    expect(existsSync(join(gwDir, 'card-uids.jsonl'))).toBe(true);
    for (const uid of [UID, UID2, UID3]) expect(filesHolding(gwFiles, uid)).toEqual([]);
    const log = logged.join('');
    expect(log).toContain('reader provisioned'); // the sink did receive the gateway's log
    for (const uid of [UID, UID2, UID3]) {
      expect(log).not.toContain(uid);
      expect(log).not.toContain(uid.toLowerCase());
    }
    for (const secret of secrets.slice(0, 2)) expect(log).not.toContain(secret);
    const unsealed = /visittag_ingest_sealed_cards_total\{outcome="unsealed"\} (\d+)/.exec(
      gw.metrics.render(),
    );
    expect(Number(unsealed?.[1])).toBeGreaterThanOrEqual(4); // A's two taps and B's two (a resend opens again)
  }, 120_000);
});
