/**
 * Checks each tap's proof (issue 18) and decides its assurance and verdict:
 * - a SUN message (NTAG 424 DNA) is decrypted and its MAC verified with the card's diversified key;
 *   it must belong to the card whose UID the reader read, and its counter must be above the last
 *   one accepted for that card (a replayed or older message is refused);
 * - a DESFire EV2/EV3 authentication transcript is re-checked step by step with the card's
 *   diversified read key; its UID must be the tap's card and its nonce (TI || RndB) new for the card;
 * - a UID-only tap is accepted, flagged or refused per policy; a UID-only tap of a card that was
 *   seen secure before is a clone suspect, flagged or refused per policy.
 * The verdict of a tap is recorded once (by reader and event id): a resend gets the same answer,
 * so a device resending a batch never turns its own tap into a "replay".
 * A batch is screened in ONE unit of work of the store (`SecureCardStore.screen`): synchronously on
 * SQLite; on PostgreSQL in one transaction under a lock per card, so instances sharing the database
 * decide as one gateway would (store/secure-cards.ts).
 * Logs carry card pseudonyms and reasons only, never UIDs or keys.
 */
import type pino from 'pino';
import {
  pseudonymiseCard,
  SDM_COUNTER_MAX,
  verifySun,
  type CardProof,
  type TapEvent,
} from '../../../protocol/index.js';
import { isPromiseLike, settle, type Awaitable } from '../store/awaitable.js';
import type { SecureCardKeys } from './keys.js';
import { ruleFor, type SecureCardPolicy } from './policy.js';
import type { SecureCardStore, SecureCardTx, SecureScreenKeys, TapAssurance } from './store.js';

export interface SecureCardVerifierOptions {
  keys: SecureCardKeys;
  store: SecureCardStore;
  policy: () => SecureCardPolicy;
  fleetKey: string;
  logger: pino.Logger;
}

type DesfireProof = Extract<CardProof, { kind: 'desfire-ev2' }>;
type DesfireCheck = ReturnType<SecureCardKeys['verifyDesfire']>;
type Outcome = Omit<TapAssurance, 'readerId' | 'eventId' | 'seq' | 'cardRef' | 'atMs'>;

/** Events that are not taps (auto-close, self-test) get no verdict. */
const isTap = (e: TapEvent): boolean => e.decision !== 'auto-close' && e.selftest !== true;

export class SecureCardVerifier {
  private readonly log: pino.Logger;

  constructor(private readonly o: SecureCardVerifierOptions) {
    this.log = o.logger.child({ module: 'secure-cards' });
  }

  /**
   * One tap's assurance and verdict (null for events that are not taps), on a store that answers
   * synchronously (SQLite). Ingest screens whole batches: `assessBatch`.
   */
  assess(readerId: string, clientRef: string | null, e: TapEvent, atMs: number): TapAssurance | null {
    const r = this.assessBatch(readerId, clientRef, [e], atMs);
    if (isPromiseLike(r)) {
      r.catch(() => undefined);
      throw new Error('SecureCardVerifier.assess needs a synchronous store; use assessBatch');
    }
    return r[0] ?? null;
  }

  /**
   * A batch's taps, in order, in ONE unit of work of the store: each tap's assurance and verdict (null
   * for events that are not taps), recorded once; a later tap of the batch sees the earlier ones.
   * Synchronous on SQLite; a Promise on PostgreSQL, settled when the verdicts are durable.
   */
  assessBatch(
    readerId: string,
    clientRef: string | null,
    events: readonly TapEvent[],
    atMs: number,
  ): Awaitable<Array<TapAssurance | null>> {
    // a DESFire transcript's crypto, once per event: for the keys (its nonce) and for the verdict
    const checked = new Map<TapEvent, DesfireCheck>();
    const desfire = (e: TapEvent, proof: DesfireProof): DesfireCheck => {
      if (checked.has(e)) return checked.get(e) ?? null;
      const r = this.verifyDesfire(proof);
      checked.set(e, r);
      return r;
    };
    const keys = (): SecureScreenKeys => {
      const taps = events.filter(isTap);
      const nonces: Array<{ cardRef: string; nonce: string }> = [];
      for (const e of taps) {
        const p = e.cardProof;
        if (
          p?.kind !== 'desfire-ev2' ||
          this.o.keys.desfireKeyNo === null ||
          p.keyNo !== this.o.keys.desfireKeyNo
        )
          continue;
        const r = desfire(e, p);
        if (r?.ok) nonces.push({ cardRef: e.card, nonce: r.nonce });
      }
      return {
        taps: taps.map((e) => ({ readerId, eventId: e.eventId })),
        cardRefs: taps.map((e) => e.card),
        nonces,
      };
    };
    const fresh: TapAssurance[] = [];
    const answer = this.o.store.screen(keys, (tx) =>
      events.map((e) => {
        if (!isTap(e)) return null;
        const known = tx.tap(readerId, e.eventId);
        if (known) return known;
        const t = this.decide(tx, readerId, clientRef, e, atMs, desfire);
        tx.record(t);
        fresh.push(t);
        return t;
      }),
    );
    return settle(answer, (out) => {
      for (const t of fresh)
        if (t.verdict !== 'accepted')
          this.log.warn(
            { readerId, seq: t.seq, card: t.cardRef, code: t.code, verdict: t.verdict },
            t.detail,
          );
      return out;
    });
  }

  /** A tap not seen before: its assurance and verdict from its proof, the policy and the card's state. */
  private decide(
    tx: SecureCardTx,
    readerId: string,
    clientRef: string | null,
    e: TapEvent,
    atMs: number,
    desfire: (e: TapEvent, proof: DesfireProof) => DesfireCheck,
  ): TapAssurance {
    const base = { readerId, eventId: e.eventId, seq: e.seq, cardRef: e.card, atMs };
    const proof = e.cardProof;
    if (e.decision === 'rejected' && e.rejectReason === 'card-auth-failed') {
      // the reader itself refused the card: it has the fleet's DESFire application but not the key
      return {
        ...base,
        assurance: 'uid-only',
        verdict: 'refused',
        code: 'card-auth-failed',
        counter: null,
        detail:
          'the reader refused a DESFire card that failed its AES authentication (wrong key, or a copy of a secure card)',
      };
    }
    if (proof?.kind === 'ntag424-sun') return { ...base, proofKind: proof.kind, ...this.checkSun(tx, e) };
    if (proof?.kind === 'desfire-ev2' && this.o.keys.desfireKeyNo !== null)
      return { ...base, proofKind: proof.kind, ...this.checkDesfire(tx, e, proof, desfire) };
    const rule = ruleFor(this.o.policy(), clientRef);
    if (tx.card(e.card)) {
      return {
        ...base,
        assurance: 'uid-only',
        verdict: rule.clone === 'refuse' ? 'refused' : 'flagged',
        code: 'clone-suspect',
        counter: null,
        detail:
          'UID-only tap of a card that proved itself secure before: a copied UID, or a secure card read by a reader that does not read its SUN message',
      };
    }
    const verdict = rule.uidOnly === 'accept' ? 'accepted' : rule.uidOnly === 'flag' ? 'flagged' : 'refused';
    // a DESFire proof this gateway cannot check (no desfireKey) counts as UID only, and says so
    const unchecked = proof
      ? ': it carried a DESFire authentication this gateway cannot check (add desfireKey to the secure-card key file)'
      : '';
    return {
      ...base,
      assurance: 'uid-only',
      verdict,
      code: verdict === 'refused' ? 'uid-only-refused' : 'uid-only',
      counter: null,
      detail:
        (verdict === 'refused' ? 'UID-only cards are refused by policy here' : 'card gave only its UID') +
        unchecked,
    };
  }

  private verifyDesfire(proof: DesfireProof): DesfireCheck {
    const hex = (s: string) => Buffer.from(s, 'hex');
    return this.o.keys.verifyDesfire({
      keyNo: proof.keyNo,
      rndA: hex(proof.rndA),
      encRndB: hex(proof.encRndB),
      auth: hex(proof.auth),
      cardUid: hex(proof.cardUid),
      env: hex(proof.env),
    });
  }

  /**
   * A DESFire transcript: the gateway re-derives the card's read key from the sealed UID and checks
   * the authentication and GetCardUID MAC; the UID must be the tap's card, the key number the
   * configured one, and the nonce new for this card.
   */
  private checkDesfire(
    tx: SecureCardTx,
    e: TapEvent,
    proof: DesfireProof,
    desfire: (e: TapEvent, proof: DesfireProof) => DesfireCheck,
  ): Outcome {
    const cardRef = e.card;
    const refused = (code: string, detail: string, nonce: string | null = null) => ({
      assurance: 'secure' as const,
      verdict: 'refused' as const,
      code,
      counter: null,
      detail,
      nonce,
    });
    const keyNo = this.o.keys.desfireKeyNo;
    if (proof.keyNo !== keyNo)
      return refused(
        'desfire-wrong-key-number',
        `DESFire authentication with key ${proof.keyNo}, but this fleet's readers use key ${keyNo}: set reader.desfire.keyNo on the reader to ${keyNo}`,
      );
    const r = desfire(e, proof);
    if (!r) return refused('desfire-unverified', 'no DESFire key configured');
    if (!r.ok) {
      const why =
        r.code === 'bad-envelope'
          ? "the reader's DESFire key is not this gateway's desfireKey (the sealed UID does not open): give both the same key"
          : `DESFire authentication transcript does not verify (${r.reason}): a reader with another key, or a forged or altered proof`;
      return refused(`desfire-${r.code}`, why);
    }
    if (pseudonymiseCard(r.uid.toString('hex').toUpperCase(), this.o.fleetKey) !== cardRef)
      return refused(
        'uid-mismatch',
        'the DESFire authentication belongs to another card than the tap (a recorded transcript moved to a copied card)',
        r.nonce,
      );
    if (tx.nonceSeen(cardRef, r.nonce))
      return refused(
        'replayed',
        'replayed DESFire authentication: this transcript was already used',
        r.nonce,
      );
    return {
      assurance: 'secure',
      verdict: 'accepted',
      code: 'secure',
      counter: null,
      detail: 'DESFire EV2 AES authentication verified',
      nonce: r.nonce,
    };
  }

  private checkSun(tx: SecureCardTx, e: TapEvent): Outcome {
    const proof = e.cardProof as Extract<CardProof, { kind: 'ntag424-sun' }>;
    const refused = (code: string, detail: string, counter: number | null = null) => ({
      assurance: 'secure' as const,
      verdict: 'refused' as const,
      code,
      counter,
      detail,
    });
    const r = verifySun(
      { piccEnc: Buffer.from(proof.picc, 'hex'), mac: Buffer.from(proof.mac, 'hex') },
      { metaReadKey: this.o.keys.metaReadKey, fileReadKeyFor: (uid) => this.o.keys.fileReadKeyFor(uid) },
    );
    if (!r.ok) {
      return refused(
        r.code,
        r.code === 'bad-mac'
          ? "SUN message MAC does not verify: the card was personalised with keys this gateway's master key does not derive (wrong key file, or another fleet's card), or the message was altered"
          : "SUN message does not decrypt to a UID and counter: wrong key file (the SDM meta read key differs), or the card's SDM settings are not visittag's",
      );
    }
    const uidRef = pseudonymiseCard(r.uid.toString('hex').toUpperCase(), this.o.fleetKey);
    if (uidRef !== e.card)
      return refused(
        'uid-mismatch',
        'SUN message belongs to another card than the UID the reader read (a replayed message on a copied card)',
        r.counter,
      );
    const last = tx.card(e.card)?.lastCounter ?? null;
    if (last !== null && r.counter <= last) {
      return r.counter === last
        ? refused('replayed', `replayed SUN message: counter ${r.counter} was already used`, r.counter)
        : refused(
            'counter-backwards',
            `SUN counter went backwards (${r.counter} after ${last}): a recorded message replayed, or a card whose counter was reset or rolled over; re-personalise or replace the card`,
            r.counter,
          );
    }
    if (r.counter >= SDM_COUNTER_MAX) {
      return {
        assurance: 'secure',
        verdict: 'flagged',
        code: 'counter-exhausted',
        counter: r.counter,
        detail: `SUN counter reached its limit (${SDM_COUNTER_MAX}): the card cannot prove another tap; replace it`,
      };
    }
    return {
      assurance: 'secure',
      verdict: 'accepted',
      code: 'secure',
      counter: r.counter,
      detail: 'SUN message verified',
    };
  }
}
