import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway, type Gateway } from '../../gateway/index.js';
import { Enrollment } from '../../gateway/src/enrollment/enrollment.js';
import { SqliteEnrollmentStore } from '../../gateway/src/store/sqlite/enrollment.js';
import { sqliteMigrations } from '../../gateway/src/store/sqlite/migrations.js';
import { openDatabase, type Db } from '../../gateway/src/store/sqlite/db.js';
import { ENROLLMENT_CODE_ALPHABET, PROVISION_PATH, systemClock, type Clock } from '../../protocol/index.js';
import { ManualClock } from '../contracts/manual-clock.js';
import {
  ADMIN_TOKEN,
  connectRefused,
  connectReader,
  silent,
  tempDir,
  testConfig,
} from '../gateway/helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function post(gw: Gateway, path: string, body: unknown, token: string | null = ADMIN_TOKEN) {
  const res = await fetch(`${gw.adminUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A gateway whose wall clock can be moved forward (expiry), with its log lines captured. */
async function gatewayWithShiftableClock(): Promise<{
  gw: Gateway;
  shift: (ms: number) => void;
  logs: string[];
}> {
  const tmp = tempDir('vt-enroll-');
  let offset = 0;
  const clock: Clock = { ...systemClock, now: () => Date.now() + offset };
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  const gw = createGateway({ config: testConfig(tmp.dir), clock, logger: pino({ level: 'info' }, sink) });
  await gw.start();
  cleanups.push(async () => {
    await gw.stop();
    tmp.cleanup();
  });
  return { gw, shift: (ms) => (offset += ms), logs };
}

describe('enrollment codes (gateway)', () => {
  it('issues a typeable code over the admin API; it provisions once, with working MQTT credentials', async () => {
    const { gw, logs } = await gatewayWithShiftableClock();
    const issued = await post(gw, '/api/enrollments', { clientRef: 'client-7', label: 'hallway' });
    expect(issued.status).toBe(201);
    const code = issued.body.code as string;
    expect(code).toMatch(
      new RegExp(
        `^[${ENROLLMENT_CODE_ALPHABET}]{4}-[${ENROLLMENT_CODE_ALPHABET}]{4}-[${ENROLLMENT_CODE_ALPHABET}]{2}$`,
      ),
    );
    const readerId = issued.body.readerId as string;
    expect(gw.registry.getReader(readerId)).toBeUndefined(); // nothing exists before the exchange

    // The exchange path needs no token; the rest of the admin API still does.
    expect((await post(gw, '/api/enrollments', { clientRef: 'x' }, null)).status).toBe(401);
    const preview = await post(
      gw,
      PROVISION_PATH,
      { schemaVersion: 1, code: code.toLowerCase(), preview: true },
      null,
    );
    expect(preview.status).toBe(200);
    expect(preview.body).toMatchObject({ readerId, clientRef: 'client-7', label: 'hallway', preview: true });
    expect(preview.body.mqtt).toBeUndefined();

    const typed = code.replace(/-/g, ' ').toLowerCase(); // technicians type it however they like
    const ex = await post(gw, PROVISION_PATH, { schemaVersion: 1, code: typed }, null);
    expect(ex.status).toBe(200);
    const mq = ex.body.mqtt as { url: string; username: string; password: string };
    expect(mq.url).toBe(`mqtt://127.0.0.1:${gw.mqttPort}`);
    expect(ex.body.fleetKey).toBe('test-fleet-key-0123456789');
    expect(gw.registry.getReader(readerId)?.clientRef).toBe('client-7');
    const c = await connectReader(gw.mqttPort ?? 0, readerId, mq.password);
    await c.endAsync();

    const again = await post(gw, PROVISION_PATH, { schemaVersion: 1, code }, null);
    expect(again).toMatchObject({ status: 409, body: { error: 'used-code' } });
    expect(again.body.fix).toMatch(/works once/);
    const list = await fetch(`${gw.adminUrl}/api/enrollments`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const text = await list.text();
    expect(text).toContain('"state": "used"');
    const raw = code.replace(/-/g, '');
    expect(text).not.toContain(raw);
    expect(logs.join('')).not.toContain(raw);
    expect(logs.join('')).not.toContain(code);
    expect(logs.join('')).toContain('provisioning refused');
  });

  it('refuses wrong, malformed and expired codes with a reason and a fix; creates nothing', async () => {
    const { gw, shift } = await gatewayWithShiftableClock();
    const wrong = await post(gw, PROVISION_PATH, { schemaVersion: 1, code: 'ABCD-EFGH-JK' }, null);
    expect(wrong).toMatchObject({ status: 404, body: { error: 'invalid-code' } });
    expect(wrong.body.fix).toMatch(/typos/);
    expect((await post(gw, PROVISION_PATH, { schemaVersion: 1, code: '0000' }, null)).status).toBe(404);
    expect((await post(gw, PROVISION_PATH, { code: 'x' }, null)).body.error).toBe('bad-request');

    const issued = await post(gw, '/api/enrollments', { clientRef: 'client-8', ttlMinutes: 5 });
    shift(5 * 60_000 + 1);
    const expired = await post(gw, PROVISION_PATH, { schemaVersion: 1, code: issued.body.code }, null);
    expect(expired).toMatchObject({ status: 410, body: { error: 'expired-code' } });
    expect(gw.registry.listReaders()).toEqual([]);
  });

  it('re-enrolling an existing reader keeps its id, rotates its password and un-revokes it', async () => {
    const { gw } = await gatewayWithShiftableClock();
    const first = await gw.registry.addReader({ readerId: 'r-old', clientRef: 'client-1' });
    gw.registry.revokeReader('r-old');
    const issued = await post(gw, '/api/enrollments', { clientRef: 'client-2', readerId: 'r-old' });
    expect(issued.body).toMatchObject({ readerId: 'r-old', replacesCredentials: true });
    const ex = await post(gw, PROVISION_PATH, { schemaVersion: 1, code: issued.body.code }, null);
    const pw = (ex.body.mqtt as { password: string }).password;
    expect(gw.registry.getReader('r-old')).toMatchObject({ clientRef: 'client-2', revokedAt: null });
    const old = await connectRefused(gw.mqttPort ?? 0, {
      clientId: 'r-old',
      username: 'r-old',
      password: first.password,
    });
    expect(old.refused).toBe(true);
    const c = await connectReader(gw.mqttPort ?? 0, 'r-old', pw);
    await c.endAsync();
  });
});

describe('guessing is rate-limited', () => {
  let db: Db;
  function make(clock: ManualClock): Enrollment {
    const tmp = tempDir('vt-enroll-rl-');
    db = openDatabase(`${tmp.dir}/g.db`, sqliteMigrations);
    cleanups.push(() => {
      db.close();
      tmp.cleanup();
    });
    const readers = new Map<string, { clientRef: string | null; revokedAt: number | null }>();
    return new Enrollment({
      store: new SqliteEnrollmentStore(db),
      clock,
      logger: silent,
      hashKey: Buffer.alloc(32, 7),
      fleetKey: 'test-fleet-key-0123456789',
      brokerUrl: () => 'mqtt://gw:1883',
      limits: { windowMs: 60_000, perSource: 3, global: 5 },
      registry: {
        addReader: (i) => {
          readers.set(i.readerId, { clientRef: i.clientRef, revokedAt: null });
          return Promise.resolve({ readerId: i.readerId, password: 'p'.repeat(43) });
        },
        getReader: () => undefined,
        setPassword: () => Promise.resolve(),
        restoreReader: () => undefined,
        moveReader: () => undefined,
      },
    });
  }

  it('per source, then globally; a valid code from a blocked source waits too; the window resets', async () => {
    const clock = new ManualClock();
    const e = make(clock);
    const good = await e.issue({ clientRef: 'c' });
    for (let i = 0; i < 3; i++) {
      expect((await e.exchange({ code: 'ZZZZ-ZZZZ-ZZ', source: '10.0.0.1' })).status).toBe(404);
    }
    const blocked = await e.exchange({ code: good.code, source: '10.0.0.1' });
    expect(blocked).toMatchObject({ status: 429, body: { error: 'rate-limited', retryAfterSec: 60 } });
    // Another source still gets in until the global budget (5) is spent.
    expect((await e.exchange({ code: 'ZZZZ-ZZZZ-Z2', source: '10.0.0.2' })).status).toBe(404);
    expect((await e.exchange({ code: 'ZZZZ-ZZZZ-Z3', source: '10.0.0.3' })).status).toBe(404);
    expect((await e.exchange({ code: good.code, source: '10.0.0.4' })).status).toBe(429);
    clock.advance(60_000);
    const ok = await e.exchange({ code: good.code, source: '10.0.0.1' });
    expect(ok.status).toBe(200);
  });
});
