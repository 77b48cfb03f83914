import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROVISION_PATH, SCHEMA_VERSION } from '../../protocol/index.js';
import { openPgPool } from '../../gateway/src/store/postgres/db.js';
import {
  AckCollector,
  ADMIN_TOKEN,
  card,
  connectReader,
  PASSWORD,
  tempDir,
  testConfig,
  waitUntil,
} from '../gateway/helpers.js';
import { startPgCluster, type PgCluster } from '../support/pg-cluster.js';
import {
  bundleGateway,
  eventsPayload,
  spawnGateway,
  T0,
  topics,
  type GatewayChild,
} from './pg-gateway-child.js';

/**
 * Reader replacement and the card lifecycle served by two real gateway processes on one PostgreSQL database
 * (`store.engine: "postgres"`, issue 14): done through A, in effect on B (and the other way round).
 *  - A replacement code issued on A is exchanged on B: B retires the old reader (revoked on both; its broker
 *    login refused on A too), closes the visit still open at it, and records the link, so A refuses a second
 *    replacement of it.
 *  - A card revoked on A is in the revoked list B pushes, and B's visits turn marks its tap revoked; a validity window
 *    set on B is what A answers; a lost card replaced on A gives the new card to the staff member on B; every
 *    change is in the one audit log both instances show.
 */
describe('reader replacement and card lifecycle across two gateway processes on PostgreSQL', () => {
  let pgc: PgCluster;
  let tmp: ReturnType<typeof tempDir>;
  let bundle: { file: string; cleanup: () => void };
  const children: GatewayChild[] = [];
  beforeAll(async () => {
    [pgc, bundle] = await Promise.all([startPgCluster(), bundleGateway()]);
    tmp = tempDir('vt-pg-fleet-');
  }, 120_000);
  afterAll(async () => {
    for (const c of children) {
      if (c.proc.exitCode === null) {
        c.proc.kill('SIGTERM');
        await c.exited;
      }
    }
    bundle?.cleanup();
    tmp?.cleanup();
    await pgc?.destroy();
  }, 120_000);

  it(
    'replaced through A and B, revoked/validity/replace on one instance in effect on the other',
    { timeout: 300_000 },
    async () => {
      const url = await pgc.createDatabase();
      const files = [0, 1].map((i) => {
        const cfg = testConfig(join(tmp.dir, `gw-${i}`), {
          store: { engine: 'postgres', url, poolMax: 3 },
          logLevel: 'info',
        });
        const file = join(tmp.dir, `gw-${i}.json`);
        writeFileSync(file, JSON.stringify(cfg));
        return file;
      });
      children.push(...(await Promise.all(files.map((f) => spawnGateway(bundle.file, f)))));
      const [a, b] = children as [GatewayChild, GatewayChild];
      const call = async (c: GatewayChild, path: string, body?: unknown, method?: string) => {
        const res = await fetch(`http://127.0.0.1:${c.adminPort}${path}`, {
          method: method ?? (body === undefined ? 'GET' : 'POST'),
          headers: {
            authorization: `Bearer ${ADMIN_TOKEN}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, unknown> };
      };
      const pool = openPgPool({ url });
      try {
        // ---- reader replacement: the old reader has an open visit (tapped in through B)
        const OLD = 'rdr-fleet-old';
        expect(
          (await call(a, '/api/readers', { readerId: OLD, clientRef: 'client-f1', password: PASSWORD }))
            .status,
        ).toBe(201);
        const X = card(1);
        expect((await call(a, `/api/cards/${X}/assign`, { staffRef: 'staff-anna' })).status).toBe(200);
        await waitUntil(async () => (await call(b, `/api/readers/${OLD}`)).status === 200, 20_000);
        const client = await connectReader(b.mqttPort, OLD);
        const acks = await AckCollector.attach(client, OLD);
        const start = {
          readerId: OLD,
          seq: 1,
          eventId: `${OLD}-e1`,
          card: X,
          decision: 'start' as const,
          visitId: `${OLD}-v1`,
          time: { wallMs: T0, bootId: 'b1', monoMs: 1, synced: true },
        };
        await client.publishAsync(topics.events(OLD), eventsPayload(OLD, [start]), { qos: 1 });
        await acks.waitFor((x) => x.upTo === 1, 30_000);
        await client.endAsync(true);
        await waitUntil(async () => {
          const v = await call(a, `/api/visits?readerId=${OLD}`);
          return (v.body.visits as Array<{ state: string }>)?.some((x) => x.state === 'open');
        }, 30_000);

        const issued = await call(a, `/api/readers/${OLD}/replace`, { label: 'swapped Pi' });
        expect(issued.status).toBe(201);
        expect(issued.body.openVisits).toBe(1);
        const exchanged = await call(b, PROVISION_PATH, {
          schemaVersion: SCHEMA_VERSION,
          code: issued.body.code as string,
          hostname: 'pi-new',
        });
        expect(exchanged.status).toBe(200);
        const NEW = exchanged.body.readerId as string;
        expect(NEW).not.toBe(OLD);
        // retired by B: revoked on both instances, the open visit closed, the link recorded (A refuses again)
        await waitUntil(async () => (await call(a, `/api/readers/${OLD}`)).body?.revoked === true, 20_000);
        const closed = await waitUntil(async () => {
          const rows = (
            await pool.query<{ state: string; end_reason: string | null }>(
              'SELECT state, end_reason FROM visits WHERE reader_id = $1',
              [OLD],
            )
          ).rows;
          return rows.length > 0 && rows.every((x) => x.state !== 'open') ? rows : null;
        }, 30_000);
        expect(closed).toHaveLength(1);
        const links = await pool.query(
          'SELECT old_reader_id, new_reader_id, closed_visits FROM reader_replacements',
        );
        expect(links.rows).toEqual([{ old_reader_id: OLD, new_reader_id: NEW, closed_visits: 1 }]);
        const again = await call(a, `/api/readers/${OLD}/replace`, {});
        expect(again.status).toBe(409);
        expect(again.body.error).toContain(`already replaced by ${NEW}`);
        await expect(connectReader(a.mqttPort, OLD)).rejects.toThrow();

        // ---- card lifecycle: revoked on A, in effect on B
        const Y = card(2);
        expect((await call(b, `/api/cards/${Y}/assign`, { staffRef: 'staff-bo' })).status).toBe(200);
        const revoked = await call(a, `/api/cards/${X}/revoke`, { reason: 'lost on the bus' });
        expect(revoked.status).toBe(200);
        expect(revoked.body.changed).toBe(true);
        expect((await call(b, `/api/cards/${X}`)).body.revokedAtMs).toEqual(expect.any(Number));
        const pushedB = await call(b, `/api/readers/${NEW}/config`, {});
        expect(pushedB.status).toBe(202);
        const cfgB = await call(b, `/api/readers/${NEW}/config`);
        expect((cfgB.body.config as { revoked: string[] }).revoked).toEqual([X]);
        // the new reader taps the revoked card in through B: B's visits turn reads the card from PostgreSQL
        const fresh = await connectReader(
          b.mqttPort,
          NEW,
          (exchanged.body.mqtt as { password: string }).password,
        );
        const freshAcks = await AckCollector.attach(fresh, NEW);
        const late = { ...start, readerId: NEW, eventId: `${NEW}-e1`, visitId: `${NEW}-v1` };
        late.time = { ...start.time, wallMs: Date.now() };
        await fresh.publishAsync(topics.events(NEW), eventsPayload(NEW, [late]), { qos: 1 });
        await freshAcks.waitFor((x) => x.upTo === 1, 30_000);
        await fresh.endAsync(true);
        await waitUntil(
          async () =>
            (
              await pool.query("SELECT 1 FROM anomalies WHERE reader_id = $1 AND kind = 'revoked-card'", [
                NEW,
              ])
            ).rowCount === 1,
          30_000,
        );
        // validity set on B, answered by A
        const v = await call(b, `/api/cards/${Y}/validity`, {
          validFrom: '2026-01-01',
          validTo: '2027-01-01',
        });
        expect(v.status).toBe(200);
        expect((await call(a, `/api/cards/${Y}`)).body).toMatchObject({
          validFromMs: Date.parse('2026-01-01'),
          validToMs: Date.parse('2027-01-01'),
        });
        // a lost card replaced on A: the new card is the staff member's on B, with the window
        const Z = card(3);
        const rep = await call(a, `/api/cards/${Y}/replace`, { newCardRef: Z, reason: 'lost' });
        expect(rep.status).toBe(200);
        expect((await call(b, `/api/cards/${Z}`)).body).toMatchObject({
          staffRef: 'staff-bo',
          revokedAtMs: null,
          validFromMs: Date.parse('2026-01-01'),
        });
        expect((await call(b, `/api/cards/${Y}`)).body).toMatchObject({ replacedBy: Z });
        // reinstated on B (refused: replaced), X reinstated on B and active for A's push
        expect((await call(b, `/api/cards/${Y}/reinstate`, {})).status).toBe(409);
        expect((await call(b, `/api/cards/${X}/reinstate`, {})).body.changed).toBe(true);
        expect((await call(a, `/api/cards/${X}`)).body.revokedAtMs).toBeNull();
        // one audit log: each change once, whichever instance made it
        const audit = await call(b, '/api/audit?limit=200');
        const actions = (audit.body.entries as Array<{ action: string; target: string }>)
          .filter((e) => e.action.startsWith('card.'))
          .map((e) => `${e.action} ${e.target}`)
          .sort();
        expect(actions).toEqual(
          [`card.reinstate ${X}`, `card.replace ${Y}`, `card.revoke ${X}`, `card.validity ${Y}`].sort(),
        );
      } finally {
        await pool.end();
      }
    },
  );
});
