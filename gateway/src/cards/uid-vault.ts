import { appendFileSync, closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { CARD_SCHEME_SEALED, GatewayCardKeys, sealCardUid } from '../../../protocol/index.js';
import type { CardScheme, Status } from '../../../protocol/index.js';

/** The vault's file name in the gateway's dataDir. */
export const CARD_UID_VAULT_FILE = 'card-uids.jsonl';

/** Associated data of the vault's seals: a vault entry never opens as a reader's tap, nor the reverse. */
export const VAULT = 'gateway-card-uid-vault';

/**
 * The card UIDs the gateway needs to build the card lists of sealed-v1 readers (docs/security.md "Key
 * exposure"): a reader on that scheme checks cards by its own reference HMAC(k_r, UID), which the gateway can
 * only compute from the UID. Each UID is kept **sealed to the gateway's own seal key** (only the fleet key
 * opens it), keyed by the card's fleet pseudonym, one JSON line per card in a 0600 file beside the database
 * (`card-uids.jsonl`): never a raw UID in the database, its backups or a log. Filled by card imports that name
 * UIDs and by every sealed tap the gateway opens; a lost file fills again the same way. Appends by another
 * process (the `cards import` CLI) are read on next use.
 */
export class CardUidVault {
  /** fleet pseudonym → UID (opened once; the gateway holds the fleet key in memory anyway). */
  private readonly uids = new Map<string, string>();
  private readBytes = 0;

  constructor(
    private readonly file: string,
    protected readonly keys: GatewayCardKeys,
  ) {}

  /** Cards whose UID is known. */
  get size(): number {
    this.refresh();
    return this.uids.size;
  }

  has(cardRef: string): boolean {
    this.refresh();
    return this.uids.has(cardRef);
  }

  /** Remembers the UIDs (normalised) of cards; already known ones are skipped. Returns how many were new. */
  learn(uids: Iterable<string>): number {
    this.refresh();
    let lines = '';
    let added = 0;
    for (const uid of uids) {
      const c = this.keys.fleetRef(uid);
      if (this.uids.has(c)) continue;
      this.uids.set(c, uid);
      lines += `${JSON.stringify({ c, s: sealCardUid(uid, this.keys.publicKey, VAULT) })}\n`;
      added++;
    }
    if (lines) this.persist(lines);
    return added;
  }

  /**
   * Every card whose UID is known: fleet pseudonym → UID. For the fleet-key rotation only (keys/rotate.ts);
   * never log or print a UID.
   */
  all(): ReadonlyMap<string, string> {
    this.refresh();
    return new Map(this.uids);
  }

  /**
   * A fleet-key reader's list during a rotation's transition (retired keys held): the cards under the current key
   * and, for each card whose UID is known, its pseudonyms under the retired keys, so a reader not yet provisioned
   * again (it still holds the old fleet key) keeps accepting the same cards offline.
   */
  fleetRefs(cardRefs: readonly string[]): string[] {
    if (!this.keys.hasRetired) return [...cardRefs];
    this.refresh();
    const old: string[] = [];
    for (const c of cardRefs) {
      const uid = this.uids.get(c);
      if (uid !== undefined) old.push(...this.keys.fleetRefsAll(uid).slice(1));
    }
    return [...cardRefs, ...old];
  }

  /** Active cards (fleet pseudonyms) whose UID is not known: left out of sealed readers' lists. */
  withoutUid(cardRefs: readonly string[]): number {
    this.refresh();
    return cardRefs.reduce((n, c) => (this.uids.has(c) ? n : n + 1), 0);
  }

  /** Keeps new vault lines (one JSON object `{c, s}` a line): appended to the file. */
  protected persist(lines: string): void {
    appendFileSync(this.file, lines, { mode: 0o600 });
    this.readBytes += Buffer.byteLength(lines);
  }

  /** Opens vault entries read from the backing store; a seal that does not open to its card is skipped. */
  protected take(entries: Iterable<{ c?: unknown; s?: unknown }>): void {
    for (const e of entries) {
      try {
        if (typeof e.c !== 'string' || typeof e.s !== 'string' || this.uids.has(e.c)) continue;
        const opened = this.keys.unseal(e.s, VAULT);
        if (opened.ok && this.keys.fleetRef(opened.uid) === e.c) this.uids.set(e.c, opened.uid);
      } catch {
        // a foreign entry: skipped (the card is learned again at its next import or tap)
      }
    }
  }

  /** Whether a fleet pseudonym's UID is in memory (without reading the backing store). */
  protected knows(cardRef: string): boolean {
    return this.uids.has(cardRef);
  }

  /**
   * A sealed-v1 reader's own references of these cards (fleet pseudonyms), sorted (never in the order of the
   * fleet list, so the two lists cannot be matched by position). Cards without a known UID are left out.
   */
  readerRefs(readerId: string, cardRefs: readonly string[]): { refs: string[]; missing: number } {
    this.refresh();
    const refs: string[] = [];
    let missing = 0;
    for (const c of cardRefs) {
      const uid = this.uids.get(c);
      if (uid === undefined) missing++;
      // during a rotation's transition (retired keys held) also the references under the old reader key
      else refs.push(...this.keys.readerRefsAll(readerId, uid));
    }
    return { refs: refs.sort(), missing };
  }

  /** Reads what was appended since the last read (by this process or another). */
  protected refresh(): void {
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= this.readBytes) return;
      const buf = Buffer.alloc(size - this.readBytes);
      readSync(fd, buf, 0, buf.length, this.readBytes);
      const text = buf.toString('utf8');
      const end = text.lastIndexOf('\n') + 1; // a line being appended right now is read next time
      this.readBytes += Buffer.byteLength(text.slice(0, end));
      const entries: Array<{ c?: unknown; s?: unknown }> = [];
      for (const line of text.slice(0, end).split('\n')) {
        if (!line) continue;
        try {
          entries.push(JSON.parse(line) as { c?: unknown; s?: unknown });
        } catch {
          // a torn line: skipped (the card is learned again at its next import or tap)
        }
      }
      this.take(entries);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * The card lists a reader is pushed, in its own form: as they are for fleet-key readers; as its own
 * references for a reader whose last status said sealed-v1 (cards whose UID the vault lacks are left out,
 * and counted in `missing`).
 */
export function cardListsFor(
  vault: CardUidVault,
  schemeOf: (readerId: string) => CardScheme | null,
): (readerId: string, cardRefs: readonly string[]) => { refs: string[]; missing: number } {
  return (readerId, cardRefs) =>
    schemeOf(readerId) === CARD_SCHEME_SEALED
      ? vault.readerRefs(readerId, cardRefs)
      : { refs: vault.fleetRefs(cardRefs), missing: 0 };
}

/**
 * The composition roots' one call: the vault in `dataDir` and the lists per reader, the scheme taken from the
 * reader's last status (seen by this process, else the stored one; a reader never heard from gets the
 * fleet-key form, which a sealed reader refuses: the card-list timer pushes again once its status arrived).
 */
export function sealedReaderCards(
  config: { dataDir: string; fleetKey: string; retiredFleetKeys?: readonly string[] },
  live: { get(readerId: string): { status: Status | null } | undefined },
  stored: (readerId: string) => unknown = () => undefined,
  /** Another vault (PostgreSQL mode: pg-uid-vault.ts, shared by the instances); default: the file in dataDir. */
  shared?: CardUidVault,
): {
  vault: CardUidVault;
  cardListsFor: (readerId: string, cardRefs: readonly string[]) => { refs: string[]; missing: number };
} {
  const vault =
    shared ??
    new CardUidVault(
      join(config.dataDir, CARD_UID_VAULT_FILE),
      new GatewayCardKeys(config.fleetKey, config.retiredFleetKeys),
    );
  const known = new Map<string, CardScheme>(); // kept when the reader goes offline (its last will has no scheme)
  const schemeOf = (readerId: string): CardScheme | null => {
    const s = live.get(readerId)?.status;
    if (s?.state === 'online') known.set(readerId, s.cardScheme ?? 'fleet-key');
    if (!known.has(readerId)) {
      const saved = stored(readerId) as { state?: unknown; cardScheme?: unknown } | null | undefined;
      if (saved?.state === 'online') {
        known.set(readerId, saved.cardScheme === CARD_SCHEME_SEALED ? CARD_SCHEME_SEALED : 'fleet-key');
      }
    }
    return known.get(readerId) ?? null;
  };
  return { vault, cardListsFor: cardListsFor(vault, schemeOf) };
}
