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
import type { SecureCardKeys } from './keys.js';
import { ruleFor, type SecureCardPolicy } from './policy.js';
import type { SecureCardStore, TapAssurance } from './store.js';

export interface SecureCardVerifierOptions {
  keys: SecureCardKeys;
  store: SecureCardStore;
  policy: () => SecureCardPolicy;
  fleetKey: string;
  logger: pino.Logger;
}

export class SecureCardVerifier {
  private readonly log: pino.Logger;

  constructor(private readonly o: SecureCardVerifierOptions) {
    this.log = o.logger.child({ module: 'secure-cards' });
  }

  /** The tap's assurance and verdict; null for events that are not taps (auto-close, self-test). */
  assess(readerId: string, clientRef: string | null, e: TapEvent, atMs: number): TapAssurance | null {
    if (e.decision === 'auto-close' || e.selftest) return null;
    const known = this.o.store.tap(readerId, e.eventId);
    if (known) return known;
    const base = { readerId, eventId: e.eventId, seq: e.seq, cardRef: e.card, atMs };
    let t: TapAssurance;
    const proof = e.cardProof;
    if (e.decision === 'rejected' && e.rejectReason === 'card-auth-failed') {
      // the reader itself refused the card: it has the fleet's DESFire application but not the key
      t = {
        ...base,
        assurance: 'uid-only',
        verdict: 'refused',
        code: 'card-auth-failed',
        counter: null,
        detail:
          'the reader refused a DESFire card that failed its AES authentication (wrong key, or a copy of a secure card)',
      };
    } else if (proof?.kind === 'ntag424-sun') {
      t = { ...base, proofKind: proof.kind, ...this.checkSun(e) };
    } else if (proof?.kind === 'desfire-ev2' && this.o.keys.desfireKeyNo !== null) {
      t = { ...base, proofKind: proof.kind, ...this.checkDesfire(e.card, proof) };
    } else {
      const rule = ruleFor(this.o.policy(), clientRef);
      const card = this.o.store.card(e.card);
      if (card) {
        t = {
          ...base,
          assurance: 'uid-only',
          verdict: rule.clone === 'refuse' ? 'refused' : 'flagged',
          code: 'clone-suspect',
          counter: null,
          detail:
            'UID-only tap of a card that proved itself secure before: a copied UID, or a secure card read by a reader that does not read its SUN message',
        };
      } else {
        const verdict =
          rule.uidOnly === 'accept' ? 'accepted' : rule.uidOnly === 'flag' ? 'flagged' : 'refused';
        // a DESFire proof this gateway cannot check (no desfireKey) counts as UID only, and says so
        const unchecked = proof
          ? ': it carried a DESFire authentication this gateway cannot check (add desfireKey to the secure-card key file)'
          : '';
        t = {
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
    }
    this.o.store.record(t);
    if (t.verdict !== 'accepted')
      this.log.warn({ readerId, seq: e.seq, card: e.card, code: t.code, verdict: t.verdict }, t.detail);
    return t;
  }

  /**
   * A DESFire transcript: the gateway re-derives the card's read key from the sealed UID and checks
   * the authentication and GetCardUID MAC; the UID must be the tap's card, the key number the
   * configured one, and the nonce new for this card.
   */
  private checkDesfire(
    cardRef: string,
    proof: Extract<CardProof, { kind: 'desfire-ev2' }>,
  ): Omit<TapAssurance, 'readerId' | 'eventId' | 'seq' | 'cardRef' | 'atMs'> {
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
    const hex = (s: string) => Buffer.from(s, 'hex');
    const r = this.o.keys.verifyDesfire({
      keyNo: proof.keyNo,
      rndA: hex(proof.rndA),
      encRndB: hex(proof.encRndB),
      auth: hex(proof.auth),
      cardUid: hex(proof.cardUid),
      env: hex(proof.env),
    });
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
    if (this.o.store.nonceSeen(cardRef, r.nonce))
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

  private checkSun(e: TapEvent): Omit<TapAssurance, 'readerId' | 'eventId' | 'seq' | 'cardRef' | 'atMs'> {
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
    const last = this.o.store.card(e.card)?.lastCounter ?? null;
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
