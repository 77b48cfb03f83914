/**
 * Secure cards in the gateway (issue 18; docs/secure-cards.md): the composition root calls
 * `createSecureCards` when the config has `secureCards`, and hands `screen` to ingest. Loading fails
 * (and the gateway does not start) when the key file is missing, malformed or readable by others.
 * The composition root gives the store: the embedded gateway (gateway/index.ts) its SQLite file's
 * (store/sqlite/secure-cards.ts), whose screen answers synchronously; a PostgreSQL instance
 * (gateway/pg-instance.ts) the shared one (store/postgres/secure-cards.ts), whose screen answers with a
 * Promise, settled once the batch's verdicts are committed.
 */
import type pino from 'pino';
import type { TapEvent } from '../../../protocol/index.js';
import { settle, type Awaitable } from '../store/awaitable.js';
import type { ScreenResult } from '../ingest/ingest.js';
import type { MetricsRegistry } from '../metrics.js';
import { loadSecureKeyFile } from './keys.js';
import type { SecureCardPolicy } from './policy.js';
import type { SecureCardStore } from './store.js';
import { SecureCardVerifier } from './verifier.js';

export interface SecureCardsSettings {
  keyFile: string;
  policy: SecureCardPolicy;
}

export interface SecureCards {
  store: SecureCardStore;
  verifier: SecureCardVerifier;
  screen: (readerId: string, events: readonly TapEvent[], atMs: number) => Awaitable<ScreenResult>;
}

export function createSecureCards(o: {
  settings: SecureCardsSettings;
  fleetKey: string;
  logger: pino.Logger;
  metrics: MetricsRegistry;
  /** The client a reader is placed with (for per-client policy). */
  clientOf: (readerId: string) => string | null;
  /** The SQLite file's adapter (synchronous screen) or PostgreSQL's shared one. */
  store: SecureCardStore;
}): SecureCards {
  const keys = loadSecureKeyFile(o.settings.keyFile);
  const store = o.store;
  const verifier = new SecureCardVerifier({
    keys,
    store,
    policy: () => o.settings.policy,
    fleetKey: o.fleetKey,
    logger: o.logger,
  });
  const taps = o.metrics.counter(
    'visittag_secure_card_taps_total',
    'Taps by assurance (secure, uid-only) and verdict (accepted, flagged, refused).',
  );
  return {
    store,
    verifier,
    screen: (readerId, events, atMs) => screenEvents(verifier, o.clientOf, taps, readerId, events, atMs),
  };
}

function screenEvents(
  verifier: SecureCardVerifier,
  clientOf: (readerId: string) => string | null,
  taps: { inc(labels?: Record<string, string>, n?: number): void },
  readerId: string,
  events: readonly TapEvent[],
  atMs: number,
): Awaitable<ScreenResult> {
  return settle(verifier.assessBatch(readerId, clientOf(readerId), events, atMs), (verdicts) => {
    const out: ScreenResult = { keep: [], refused: [] };
    events.forEach((e, i) => {
      const t = verdicts[i];
      if (t) taps.inc({ assurance: t.assurance, verdict: t.verdict });
      // a tap the device already rejected stays: it opens no visit and the visits engine raises its anomaly
      if (t?.verdict === 'refused' && e.decision !== 'rejected')
        out.refused.push({ seq: e.seq, detail: `secure card ${t.code}: ${t.detail}`.slice(0, 200) });
      else out.keep.push(e);
    });
    return out;
  });
}
