import type { Role } from './roles.js';

/** `T` from SQLite (synchronous), `Promise<T>` from an engine with round trips: callers always await. */
export type Awaitable<T> = T | Promise<T>;

export interface User {
  userId: string;
  /** Login name (local accounts) or the OIDC preferred_username. */
  name: string;
  displayName: string;
  role: Role;
  areas: string[];
  provider: string | null;
  /** The staff member a care-staff account is (sees that staff member's own registrations only). */
  staffRef: string | null;
  /** scrypt hash; null for SSO-only accounts. */
  passwordHash: string | null;
  /** OIDC `iss|sub` bound to this account, when any. */
  oidcSubject: string | null;
  disabledAt: number | null;
  createdAtMs: number;
}

export interface Session {
  /** sha256 of the cookie value (the cookie itself is never stored). */
  idHash: string;
  userId: string;
  csrf: string;
  createdAtMs: number;
  expiresAtMs: number;
  lastSeenMs: number;
}

export interface ApiToken {
  tokenId: string;
  name: string;
  role: Role;
  areas: string[];
  provider: string | null;
  /** sha256 of the secret part. */
  secretHash: string;
  createdBy: string;
  createdAtMs: number;
  expiresAtMs: number | null;
  revokedAtMs: number | null;
}

/**
 * The users / sessions / API tokens port. Each method is one unit of work (one transaction).
 * The SQLite adapter is ./sqlite.ts; the tables move under gateway/src/store/ with the other groups.
 */
export interface AuthStore {
  countUsers(): Awaitable<number>;
  insertUser(u: User): Awaitable<void>;
  updateUser(u: User): Awaitable<void>;
  userById(userId: string): Awaitable<User | null>;
  userByName(name: string): Awaitable<User | null>;
  userByOidcSubject(subject: string): Awaitable<User | null>;
  listUsers(): Awaitable<User[]>;

  insertSession(s: Session): Awaitable<void>;
  sessionByHash(idHash: string): Awaitable<Session | null>;
  touchSession(idHash: string, lastSeenMs: number): Awaitable<void>;
  deleteSession(idHash: string): Awaitable<void>;
  deleteSessionsOf(userId: string): Awaitable<number>;
  deleteExpiredSessions(nowMs: number): Awaitable<number>;

  insertToken(t: ApiToken): Awaitable<void>;
  tokenById(tokenId: string): Awaitable<ApiToken | null>;
  listTokens(): Awaitable<ApiToken[]>;
  revokeToken(tokenId: string, atMs: number): Awaitable<boolean>;
}
