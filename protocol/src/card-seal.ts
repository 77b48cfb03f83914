import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { z } from 'zod';
import { MIN_FLEET_KEY_BYTES, normalizeUid, pseudonymiseCard } from './uid.js';

/**
 * Sealed cards (issue 16, docs/security.md "Key exposure"; added within version 1). The fleet key that turns
 * card UIDs into fleet pseudonyms (`c1_…`) stays on the gateway. A reader on this scheme holds only:
 *
 * - its **reader card key** `k_r`: its allow-list and its per-card state use `r1_` = HMAC(k_r, UID), which is
 *   useless on any other reader and says nothing about the fleet pseudonym;
 * - the gateway's **public seal key** (X25519): every tap carries the UID sealed to it (ephemeral X25519, HKDF,
 *   AES-256-GCM), which only the gateway can open. It unseals at ingest, pseudonymises with the fleet key and
 *   drops the UID before anything is stored.
 *
 * Every gateway key is derived from the fleet key (one secret to keep, the same on every gateway instance):
 * the seal key pair from HKDF(fleetKey, "visittag/card-seal/v1"), each `k_r` as HMAC(HKDF(fleetKey,
 * "visittag/reader-card-key/v1"), readerId). Both derivations are one-way: a reader's secrets give neither the
 * fleet key nor another reader's `k_r`.
 */
export const CARD_SCHEME_SEALED = 'sealed-v1' as const;

/** How a reader turns a card into a reference: the fleet key (legacy) or its own key plus a sealed UID. */
export const CardScheme = z
  .enum(['fleet-key', CARD_SCHEME_SEALED])
  .describe(
    'fleet-key: the reader holds the fleet key and sends fleet pseudonyms (c1_); sealed-v1: the reader holds only its own card key and the gateway public key, and sends r1_ references with the UID sealed to the gateway.',
  );
export type CardScheme = z.infer<typeof CardScheme>;

/** A reader's own card reference: `r1_` + 32 lowercase hex chars (HMAC of the normalised UID with k_r). */
export const READER_CARD_REF_PATTERN = /^r1_[0-9a-f]{32}$/;
export const ReaderCardRef = z
  .string()
  .regex(READER_CARD_REF_PATTERN, 'must be a reader card reference ("r1_" + 32 hex chars)')
  .describe("The card's reference under this reader's own key; meaningless on any other reader.");

const B64URL = '[A-Za-z0-9_-]';
/** key id (8) ‖ ephemeral public key (32) ‖ iv (12) ‖ ciphertext (11: length byte, UID, zero padding) ‖ tag (16). */
const SEALED_BYTES = 8 + 32 + 12 + 11 + 16;
const SEALED_CHARS = Math.ceil((SEALED_BYTES * 4) / 3);
export const SEALED_CARD_PATTERN = new RegExp(`^s1_${B64URL}{${SEALED_CHARS}}$`);
export const SealedCard = z
  .string()
  .regex(SEALED_CARD_PATTERN, `must be a sealed card ("s1_" + ${SEALED_CHARS} base64url chars)`)
  .describe(
    'The card UID sealed to the gateway public key (X25519 + HKDF-SHA256 + AES-256-GCM, padded to one length); only the gateway opens it.',
  );

/** 32 bytes, base64url without padding. */
const Key32 = z.string().regex(new RegExp(`^${B64URL}{43}$`), 'must be 32 bytes, base64url');

/** The card secrets a reader on the sealed scheme holds (device config, provisioning response). */
export const ReaderCardKeys = z
  .object({
    scheme: z.literal(CARD_SCHEME_SEALED),
    readerKey: Key32.describe("This reader's own card key k_r (its allow-list references)."),
    gatewayKey: Key32.describe('The gateway public X25519 key taps are sealed to.'),
  })
  .strict()
  .describe('Card keys of a reader on the sealed scheme: no fleet key.');
export type ReaderCardKeys = z.infer<typeof ReaderCardKeys>;

const b64 = (b: Buffer): string => b.toString('base64url');
const AAD_PREFIX = 'visittag/sealed-card/v1:';

function keyBytes(fleetKey: Uint8Array | string): Buffer {
  const key = typeof fleetKey === 'string' ? Buffer.from(fleetKey, 'utf8') : Buffer.from(fleetKey);
  if (key.byteLength < MIN_FLEET_KEY_BYTES) {
    throw new Error(`fleet key must be at least ${MIN_FLEET_KEY_BYTES} bytes`);
  }
  return key;
}

function hkdf(ikm: Buffer, info: string, salt: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}

// DER prefixes of a raw X25519 key (RFC 8410).
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

const publicKeyOf = (raw: Buffer): KeyObject =>
  createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
const rawPublic = (k: KeyObject): Buffer => k.export({ format: 'der', type: 'spki' }).subarray(-32);
const keyIdOf = (rawPub: Buffer): Buffer =>
  createHash('sha256').update('visittag/card-seal-key/v1:').update(rawPub).digest().subarray(0, 8);

function aeadKey(shared: Buffer, ephPub: Buffer, gwPub: Buffer): Buffer {
  return hkdf(shared, 'visittag/card-seal/v1/aead', Buffer.concat([ephPub, gwPub]));
}

/** The reader's own reference of a card: `r1_` + the first 128 bits of HMAC-SHA256(k_r, uid). */
export function readerCardRef(uid: string, readerKey: string): string {
  const norm = normalizeUid(uid);
  if (!norm.ok) throw new Error(`cannot pseudonymise an invalid UID: ${norm.reason}`);
  const key = Buffer.from(readerKey, 'base64url');
  if (key.byteLength !== 32) throw new Error('reader card key must be 32 bytes');
  const mac = createHmac('sha256', key).update('visittag/reader-card/v1:').update(norm.uid).digest('hex');
  return `r1_${mac.slice(0, 32)}`;
}

/**
 * Seals a UID to the gateway public key for one reader (the reader id is bound as associated data, so a
 * sealed card copied into another reader's batch does not open). Randomised: two seals of one card differ.
 */
export function sealCardUid(uid: string, gatewayKey: string, readerId: string): string {
  const norm = normalizeUid(uid);
  if (!norm.ok) throw new Error(`cannot seal an invalid UID: ${norm.reason}`);
  const gwPub = Buffer.from(gatewayKey, 'base64url');
  if (gwPub.byteLength !== 32) throw new Error('gateway key must be 32 bytes');
  const eph = generateKeyPairSync('x25519');
  const ephPub = rawPublic(eph.publicKey);
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: publicKeyOf(gwPub) });
  const keyId = keyIdOf(gwPub);
  const iv = randomBytes(12);
  const uidBytes = Buffer.from(norm.uid, 'hex');
  const plain = Buffer.alloc(11);
  plain[0] = uidBytes.byteLength;
  uidBytes.copy(plain, 1);
  const c = createCipheriv('aes-256-gcm', aeadKey(shared, ephPub, gwPub), iv);
  c.setAAD(Buffer.concat([Buffer.from(AAD_PREFIX + readerId, 'utf8'), keyId]));
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return `s1_${b64(Buffer.concat([keyId, ephPub, iv, ct, c.getAuthTag()]))}`;
}

export type UnsealResult =
  | { ok: true; uid: string }
  /** unknown-key: sealed to another gateway key (config drift: do not hold the tap as rejected). */
  | { ok: false; reason: 'unknown-key' | 'invalid'; detail: string };

/**
 * The gateway side of the sealed scheme: every key derived from the fleet key. Holds the private seal
 * key; never logs or returns a secret except `readerCardKeys` (for the reader being provisioned).
 */
export class GatewayCardKeys {
  private readonly privateKey: KeyObject;
  private readonly pub: Buffer;
  private readonly keyId_: Buffer;
  private readonly readerMaster: Buffer;
  private readonly fleetKey: Buffer;
  /** Keys of fleet keys retired by a rotation (docs/security.md "Fleet-key rotation"): they open old seals only. */
  private readonly retired: GatewayCardKeys[];

  /**
   * `retired`: fleet keys a rotation replaced (config `retiredFleetKeys`). A card sealed to one of their seal keys
   * (a reader not yet provisioned again, or its journal's older taps) still opens, and its reader reference is
   * checked under that key; what comes out is always named under the current fleet key.
   */
  constructor(fleetKey: Uint8Array | string, retired: ReadonlyArray<Uint8Array | string> = []) {
    this.fleetKey = keyBytes(fleetKey);
    this.retired = retired.map((k) => new GatewayCardKeys(k));
    const seed = hkdf(this.fleetKey, 'visittag/card-seal/v1');
    this.privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_X25519, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    this.pub = rawPublic(createPublicKey(this.privateKey));
    this.keyId_ = keyIdOf(this.pub);
    this.readerMaster = hkdf(this.fleetKey, 'visittag/reader-card-key/v1');
  }

  /** The seal key's id, hex (8 bytes of a hash of the public key; safe to print and store). */
  get keyId(): string {
    return this.keyId_.toString('hex');
  }

  /** Whether retired keys are held (a rotation is in its transition). */
  get hasRetired(): boolean {
    return this.retired.length > 0;
  }

  /** The public seal key, base64url (safe to publish). */
  get publicKey(): string {
    return b64(this.pub);
  }

  /** A reader's own card key k_r, base64url. */
  readerKey(readerId: string): string {
    return b64(createHmac('sha256', this.readerMaster).update(readerId, 'utf8').digest());
  }

  /** What a reader on the sealed scheme is given at provisioning. */
  readerCardKeys(readerId: string): ReaderCardKeys {
    return { scheme: CARD_SCHEME_SEALED, readerKey: this.readerKey(readerId), gatewayKey: this.publicKey };
  }

  /** The reader's own reference of a card (to build that reader's allow-list). */
  readerRef(readerId: string, uid: string): string {
    return readerCardRef(uid, this.readerKey(readerId));
  }

  /**
   * A reader's references of a card under the current key and every retired one (current first): a reader
   * not yet provisioned again after a rotation checks cards with its old key.
   */
  readerRefsAll(readerId: string, uid: string): string[] {
    return [this.readerRef(readerId, uid), ...this.retired.map((k) => k.readerRef(readerId, uid))];
  }

  /** Whether `ref` is the reader's reference of the card under the current key or a retired one. */
  isReaderRef(readerId: string, uid: string, ref: string): boolean {
    return this.readerRefsAll(readerId, uid).includes(ref);
  }

  /** The card's fleet pseudonyms under the current key and every retired one (current first). */
  fleetRefsAll(uid: string): string[] {
    return [this.fleetRef(uid), ...this.retired.map((k) => k.fleetRef(uid))];
  }

  /** The fleet pseudonym of a card (what the gateway stores and forwards). */
  fleetRef(uid: string): string {
    return pseudonymiseCard(uid, this.fleetKey);
  }

  /** Opens a sealed card of `readerId`. The UID is returned to the caller only; never log it. */
  unseal(sealed: string, readerId: string): UnsealResult {
    if (!SEALED_CARD_PATTERN.test(sealed)) return { ok: false, reason: 'invalid', detail: 'malformed' };
    const raw = Buffer.from(sealed.slice(3), 'base64url');
    if (raw.byteLength !== SEALED_BYTES) return { ok: false, reason: 'invalid', detail: 'wrong length' };
    const keyId = raw.subarray(0, 8);
    if (!timingSafeEqual(keyId, this.keyId_)) {
      const old = this.retired.find((k) => timingSafeEqual(keyId, k.keyId_));
      if (old) return old.unseal(sealed, readerId);
      return { ok: false, reason: 'unknown-key', detail: 'sealed to another gateway key' };
    }
    const ephPub = raw.subarray(8, 40);
    const iv = raw.subarray(40, 52);
    const ct = raw.subarray(52, 63);
    const tag = raw.subarray(63);
    try {
      const shared = diffieHellman({ privateKey: this.privateKey, publicKey: publicKeyOf(ephPub) });
      const d = createDecipheriv('aes-256-gcm', aeadKey(shared, ephPub, this.pub), iv);
      d.setAAD(Buffer.concat([Buffer.from(AAD_PREFIX + readerId, 'utf8'), keyId]));
      d.setAuthTag(tag);
      const plain = Buffer.concat([d.update(ct), d.final()]);
      const len = plain[0] ?? 0;
      if (len + 1 > plain.byteLength || plain.subarray(1 + len).some((b) => b !== 0)) {
        return { ok: false, reason: 'invalid', detail: 'bad padding' };
      }
      const norm = normalizeUid(plain.subarray(1, 1 + len));
      if (!norm.ok) return { ok: false, reason: 'invalid', detail: 'not a card UID' };
      return { ok: true, uid: norm.uid };
    } catch {
      return {
        ok: false,
        reason: 'invalid',
        detail: 'does not open (tampered, or sealed for another reader)',
      };
    }
  }
}
