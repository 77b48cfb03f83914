/**
 * `npm start`: the whole product on one machine. The real gateway (embedded MQTT broker, SQLite
 * under ./data/), a small fleet of simulated readers running the real device code, and a fake
 * planning backend, living a home-care day at an accelerated pace. The day comes from a generated care
 * plan (simulator/plan), imported into the gateway first; the staff follow it with realistic lateness,
 * illness and forgotten taps, and the gateway's late/missed/understaffed alerts are printed as the
 * planning backend receives them. Ctrl-C stops it cleanly.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import pino from 'pino';
import { utcToLocal } from '../gateway/src/care/time.js';
import type { TapRecord } from './checker.js';
import { DEFAULT_BEHAVIOUR, playPlan } from './plan/behaviour.js';
import { generatePlan } from './plan/generate.js';
import { importPlan } from './plan/run.js';
import { createRng } from './prng.js';
import { createWorld, type World } from './world.js';

const { values } = parseArgs({
  options: {
    readers: { type: 'string', default: '20' },
    staff: { type: 'string', default: '8' },
    speed: { type: 'string', default: '240' },
    seed: { type: 'string', default: '42' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(
    'npm start -- [--readers 20 (one per client)] [--staff 8] [--speed 120 (virtual seconds per real second, default 240)] [--seed 42]\n',
  );
  process.exit(0);
}
const readers = Math.max(1, Number(values.readers) || 20);
const staffN = Math.max(1, Number(values.staff) || 8);
const speed = Math.max(1, Number(values.speed) || 240);
const seed = Number(values.seed) || 42;

/** Local wall-clock time (the plan's zone, Europe/Stockholm), as a coordinator reads it. */
const hhmm = (ms: number) => utcToLocal(ms).time.slice(0, 5);
const out = (s: string) => process.stdout.write(`${s}\n`);

/**
 * A demo login for the web app: user "demo" (admin) with a password made for this run and printed once
 * (the demo's data folder is new every run; there is no default password anywhere).
 */
async function createDemoLogin(admin: string, token: string): Promise<string> {
  const password = randomBytes(12).toString('base64url');
  const res = await fetch(`${admin}/api/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'demo',
      displayName: 'Demo',
      role: 'admin',
      password,
      reason: 'npm start demo',
    }),
  }).catch(() => null);
  return res?.status === 201
    ? `log in as demo / ${password}  (admin; Swedish, English in the menu)`
    : `(no demo login: creating it answered ${res?.status ?? 'nothing'}; add one with visittag-gateway user add)`;
}

async function main(): Promise<void> {
  const plan = generatePlan({ seed, clients: readers, staff: staffN, days: 1 });
  const played = playPlan(plan, seed, DEFAULT_BEHAVIOUR);
  const scenario = played.scenario;
  const dataRoot = resolve('data');
  out(
    `visittag demo: ${readers} readers in clients' homes, ${staffN} care staff, one planned day ` +
      `(${plan.fromDate}, ${plan.visits.length} planned visits) at ${speed}× speed`,
  );
  out('starting the gateway (embedded MQTT broker + SQLite), the fake planning backend and the readers…');
  const world: World = await createWorld({
    scenario,
    rng: createRng(seed),
    logger: pino({ level: 'silent' }),
    baseDir: dataRoot,
    skews: new Map(),
    childReaders: new Set(),
    gatewayInChild: false,
  });
  await importPlan(world, plan);
  const token = world.adminToken;
  const admin = world.gateway.adminUrl.replace(/\/$/, '');
  const login = await createDemoLogin(admin, token);
  out('');
  out(`  data folder        ${world.dir}  (gateway/gateway.db, readers/<id>/journal.db)`);
  out(
    `  MQTT broker        mqtt://127.0.0.1:${world.gateway.mqttPort}  (readers authenticate; per-reader ACL)`,
  );
  out(`  planning backend   ${world.backend.url}  (fake; signed webhooks, dedupe by idempotency key)`);
  out(`  admin API          ${admin}/api/readers   (token below)`);
  out(
    `                     ${admin}/api/visits  ${admin}/api/anomalies  ${admin}/api/outbox  ${admin}/metrics`,
  );
  out(`  try                curl -H 'authorization: Bearer ${token}' ${admin}/api/readers`);
  out(`  web app            ${admin}/   ${login}`);
  out(`  care plan          ${plan.visits.length} planned visits imported; ${admin}/api/plan/alerts`);
  out('');
  out('Ctrl-C stops everything cleanly and prints a summary.\n');

  const staffOf = new Map(scenario.staff.map((s) => [s.card.cardRef, s.staffRef]));
  const clientOf = new Map(scenario.homes.map((h) => [h.readerId, h.clientRef]));
  const taps: TapRecord[] = [];
  const pendingFor = new Map<string, TapRecord[]>();
  for (const [id, r] of world.readers) {
    pendingFor.set(id, []);
    r.onSignal = (pattern) => {
      const rec = pendingFor.get(id)?.shift();
      if (!rec) return;
      rec.feedback = pattern as (typeof rec)['feedback'];
      out(
        `${hhmm(world.clock.now())}  ${id} (${clientOf.get(id)})  ${rec.staffRef ?? 'unknown card'} → ${pattern}` +
          `   [backend has ${world.backend.received().length} events]`,
      );
    };
  }

  let stopping = false;
  const stopped = new Promise<void>((res) => {
    process.once('SIGINT', () => {
      stopping = true;
      res();
    });
    process.once('SIGTERM', () => {
      stopping = true;
      res();
    });
  });

  // Plan alerts as the planning backend receives them (each once, by idempotency key).
  let seen = 0;
  const alertCounts = { raised: 0, cleared: 0 };
  const printAlerts = () => {
    const received = world.backend.received();
    for (; seen < received.length; seen++) {
      const e = received[seen];
      if (!e) break;
      if (e.type === 'plan.alert.raised') {
        alertCounts.raised++;
        out(
          `${hhmm(Date.parse(e.raisedAt))}  ALERT ${e.kind.padEnd(12)} ${e.clientRef} (${e.areaId}), planned ` +
            `${hhmm(Date.parse(e.plannedStart))}  [${e.plannedVisitId}]`,
        );
      } else if (e.type === 'plan.alert.cleared') {
        alertCounts.cleared++;
        out(
          `${hhmm(Date.parse(e.clearedAt))}  cleared ${e.kind.padEnd(10)} ${e.clientRef} (${e.areaId}): ${e.clearedBy}`,
        );
      }
    }
  };

  let next = 0;
  const actions = scenario.actions;
  let dayOverSaid = false;
  const tickMs = 50;
  while (!stopping) {
    const target = world.clock.now() + (speed * tickMs) / 1;
    while (world.clock.now() < target && !stopping) {
      const a = actions[next];
      const stepEnd = Math.min(
        target,
        world.clock.now() + 1000,
        a ? Math.max(a.atMs, world.clock.now()) : Infinity,
      );
      await world.stepTo(stepEnd);
      while (actions[next] && (actions[next]?.atMs ?? Infinity) <= world.clock.now()) {
        const act = actions[next++];
        if (!act) break;
        const vr = world.readers.get(act.readerId);
        if (!vr) continue;
        if (act.intent !== null && act.kind !== 'remove') {
          const rec = {
            readerId: act.readerId,
            cardRef: act.cardRef,
            staffRef: staffOf.get(act.cardRef) ?? null,
            atMs: world.clock.now(),
            intent: act.intent,
            visitKey: act.visitKey,
            feedback: null,
          };
          taps.push(rec);
          pendingFor.get(act.readerId)?.push(rec);
        }
        await vr.act(act.kind, act.uid);
      }
    }
    if (!dayOverSaid && next >= actions.length) {
      dayOverSaid = true;
      out(
        `\n${hhmm(world.clock.now())}  the day's last tap is done; readers keep syncing. Ctrl-C to stop.\n`,
      );
    }
    printAlerts();
    await Promise.race([new Promise((r) => setTimeout(r, tickMs)), stopped]);
  }

  printAlerts();
  out('\nstopping: readers, gateway, backend…');
  const received = world.backend.received();
  const byType: Record<string, number> = {};
  for (const e of received)
    byType[e.type === 'visit.anomaly' ? `anomaly:${e.anomaly}` : e.type] =
      (byType[e.type === 'visit.anomaly' ? `anomaly:${e.anomaly}` : e.type] ?? 0) + 1;
  await world.close({ keep: true });
  out('');
  out(`summary (virtual time ${hhmm(world.clock.now())})`);
  out(
    `  taps               ${taps.length} (${taps.filter((t) => t.feedback !== null).length} with feedback)`,
  );
  out(
    `  delivered          ${
      Object.entries(byType)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'nothing yet'
    }`,
  );
  out(
    `  plan alerts        ${alertCounts.raised} raised, ${alertCounts.cleared} cleared (late, missed, understaffed)`,
  );
  out(`  redeliveries       ${world.backend.duplicates} (deduped by idempotency key)`);
  out(`  data kept in       ${world.dir}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`visittag demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
