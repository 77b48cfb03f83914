import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, TapEvent } from '../../../protocol/index.js';
import { cardIdentifier } from '../card-keys.js';
import type { DeviceSettings } from '../config.js';
import { Journal } from '../core/journal.js';
import { mqttClientOptions } from '../core/mqtt-options.js';
import { eventTime, readBootId } from '../core/time.js';
import { Uplink } from '../core/uplink.js';
import type { CardReader } from '../ports/card-reader.js';
import { FEEDBACK_PATTERNS, type Feedback, type FeedbackPattern } from '../ports/feedback.js';
import {
  checkClock,
  checkGateway,
  checkStorage,
  serviceRunning,
  within,
  type CheckResult,
} from './checks.js';

/** What the technician should notice (GPIO / reader LED; see device/README.md "Feedback patterns"). */
export const PATTERN_HINTS: Record<FeedbackPattern, string> = {
  'visit-started': 'one long green light and one short beep (visit started)',
  'visit-ended': 'two green blinks and two beeps (visit ended)',
  repeat: 'three quick green flickers, silent (already registered)',
  rejected: 'a long red light and a long low beep (card not accepted)',
  'fault-reader': 'three red blinks with beeps (reader fault)',
  'fault-storage': 'five fast red blinks and one beep (storage fault)',
  identify: 'green/red alternating, silent (identify)',
};

export interface SelftestOptions {
  config: DeviceSettings;
  clock: Clock;
  logger: Logger;
  random: () => number;
  cardReader: CardReader;
  feedback: Feedback;
  /** With the simulated reader: the self-test presents this card itself. */
  inject?: (uid: string) => void;
  /** Line printer (the checklist). */
  print: (line: string) => void;
  timesyncFlag?: string;
  tapTimeoutMs?: number;
  /** How long to wait for a PC/SC reader to show up after start (default 5 s). */
  attachWaitMs?: number;
}

export interface SelftestReport {
  passed: boolean;
  results: CheckResult[];
}

const TEST_UID = '04A1B2C3D4E5F6';

/**
 * The technician's self-test: a checklist with a verdict. Runs with the service stopped (it uses the
 * journal and the reader's MQTT identity itself). The test tap is journalled with `selftest: true`
 * (the gateway never turns it into a visit), published and must come back acknowledged.
 */
export async function runSelftest(o: SelftestOptions): Promise<SelftestReport> {
  const cfg = o.config;
  const results: CheckResult[] = [];
  const report = (r: CheckResult): CheckResult => {
    results.push(r);
    o.print(`[${r.ok ? ' OK ' : 'FAIL'}] ${r.name}: ${r.detail}`);
    if (!r.ok && r.fix) o.print(`       → ${r.fix}`);
    return r;
  };
  const pid = serviceRunning(cfg.readerId);
  if (pid !== null) {
    report({
      name: 'service stopped',
      ok: false,
      detail: `visittag-device is running (pid ${pid}) and holds the journal`,
      fix: 'sudo systemctl stop visittag-device, run the self-test, then sudo systemctl start visittag-device',
    });
    return { passed: false, results };
  }

  const storage = report(checkStorage(cfg.dataDir));
  report(await checkClock(o.timesyncFlag ?? '/run/systemd/timesync/synchronized'));

  // Card reader
  let readerOk = false;
  try {
    await o.cardReader.start();
    if (!o.cardReader.attached) {
      // PC/SC readers show up a moment after start.
      let onAttached: (() => void) | null = null;
      await within(
        o.clock,
        o.attachWaitMs ?? 5_000,
        new Promise<void>((resolve) => {
          onAttached = () => resolve();
          o.cardReader.on('attached', onAttached);
        }),
      );
      if (onAttached) o.cardReader.off('attached', onAttached);
    }
    readerOk = o.cardReader.attached;
    report(
      readerOk
        ? { name: 'card reader attached', ok: true, detail: 'attached and responding' }
        : {
            name: 'card reader attached',
            ok: false,
            detail: 'no card reader found',
            fix: 'plug the reader into a USB port; check it with pcsc_scan; sudo systemctl restart pcscd',
          },
    );
  } catch (err) {
    report({
      name: 'card reader attached',
      ok: false,
      detail: (err as Error).message,
      fix: 'install and start pcscd (sudo apt install pcscd; sudo systemctl enable --now pcscd), blacklist pn533 (see docs/technician.md)',
    });
  }

  // Feedback: play every pattern, the technician watches and listens.
  try {
    await o.feedback.start();
    for (const p of FEEDBACK_PATTERNS) {
      o.print(`       ▸ ${p}: you should see/hear ${PATTERN_HINTS[p]}`);
      await o.feedback.signal(p);
    }
    const err = o.feedback.lastError;
    report(
      err
        ? {
            name: 'feedback works',
            ok: false,
            detail: err,
            fix: 'check the LED/buzzer wiring and feedback.pins; see device/HARDWARE.md',
          }
        : {
            name: 'feedback works',
            ok: true,
            detail: `played ${FEEDBACK_PATTERNS.length} patterns (if you saw/heard nothing, check the wiring)`,
          },
    );
  } catch (err) {
    report({
      name: 'feedback works',
      ok: false,
      detail: (err as Error).message,
      fix: 'check feedback.driver and wiring; see device/HARDWARE.md',
    });
  }

  const mqttOpts = mqttClientOptions(cfg.readerId, cfg.mqtt);
  const gw = report(await checkGateway(o.clock, cfg.mqtt.url, mqttOpts, cfg.mqtt.connectTimeoutMs));

  // Test tap round trip.
  if (!storage.ok || !gw.ok || !readerOk) {
    report({
      name: 'test tap round trip',
      ok: false,
      detail: 'skipped: fix the lines above first',
      fix: 'see above',
    });
  } else {
    report(await testTap(o));
  }
  await o.cardReader.stop().catch(() => undefined);
  await o.feedback.stop().catch(() => undefined);
  const passed = results.every((r) => r.ok);
  const failed = results.filter((r) => !r.ok).length;
  o.print(
    passed ? 'VERDICT: PASS, this reader works end to end.' : `VERDICT: FAIL (${failed} problem(s) above).`,
  );
  return { passed, results };
}

async function testTap(o: SelftestOptions): Promise<CheckResult> {
  const name = 'test tap round trip';
  const cfg = o.config;
  const bootId = readBootId(o.random);
  const journal = new Journal({
    path: join(cfg.dataDir, 'journal.db'),
    logger: o.logger,
    capacity: cfg.journal.capacity,
  });
  const now = () => eventTime(o.clock, bootId, false);
  const uplink = new Uplink({
    readerId: cfg.readerId,
    mqtt: cfg.mqtt,
    uplink: cfg.uplink,
    journal,
    clock: o.clock,
    random: o.random,
    logger: o.logger,
    now,
    status: () => {
      const j = journal.stats();
      const t = now();
      return {
        readerId: cfg.readerId,
        firmware: 'selftest',
        bootId,
        at: { wallMs: t.wallMs, monoMs: t.monoMs },
        queueDepth: j.depth,
        oldestUnackedSeq: j.oldestUnacked?.seq ?? null,
        oldestUnackedAgeMs: null,
        lastAckedSeq: j.lastAckedSeq,
        journalCapacity: j.capacity,
        clock: { synced: false, source: 'none' },
        readerAttached: o.cardReader.attached,
        freeStorageBytes: 0,
        configVersion: 0,
        configError: null,
        faults: [],
      };
    },
    onConfig: () => undefined,
    onCommand: () => undefined,
  });
  const timeoutMs = o.tapTimeoutMs ?? 60_000;
  try {
    uplink.start();
    let onCard: ((c: { uid: string }) => void) | null = null;
    const card = new Promise<string>((resolve) => {
      onCard = ({ uid }) => resolve(uid);
      o.cardReader.on('card', onCard);
    });
    if (o.inject) {
      o.print('       ▸ simulated reader: presenting a test card');
      o.inject(TEST_UID);
    } else {
      o.print(`       ▸ present a staff card to the reader now (${Math.round(timeoutMs / 1000)} s)`);
    }
    const uid = await within(o.clock, timeoutMs, card);
    if (onCard) o.cardReader.off('card', onCard);
    if (!uid) {
      return {
        name,
        ok: false,
        detail: 'no card was read',
        fix: 'hold a card flat on the reader for a second; if nothing happens check the reader (pcsc_scan)',
      };
    }
    const seq = journal.nextSeq;
    const ev: TapEvent = {
      readerId: cfg.readerId,
      seq,
      eventId: `st-${bootId.slice(0, 12)}-${seq}`,
      ...cardIdentifier(cfg).identify(uid),
      decision: 'start',
      visitId: `selftest-${seq}`,
      time: now(),
      selftest: true,
    };
    journal.append([ev], null);
    uplink.kick();
    const t0 = o.clock.monotonic();
    const acked = new Promise<true>((resolve) => {
      const check = (upTo: number) => {
        if (upTo >= seq) {
          uplink.off('acked', check);
          resolve(true);
        }
      };
      uplink.on('acked', check);
      check(journal.lastAckedSeq);
    });
    const ok = await within(o.clock, Math.max(10_000, cfg.uplink.ackTimeoutMs * 2), acked);
    if (!ok) {
      return {
        name,
        ok: false,
        detail: `test tap seq ${seq} journalled but not acknowledged by the gateway`,
        fix: 'check the gateway status page (visittag-gateway status) and its log for rejects of this reader',
      };
    }
    await o.feedback.signal('visit-started');
    return {
      name,
      ok: true,
      detail: `card ${ev.card.slice(0, 10)}… tap seq ${seq} journalled, sent and acknowledged in ${Math.round(o.clock.monotonic() - t0)} ms`,
    };
  } finally {
    await uplink.stop(2_000);
    journal.close();
  }
}
