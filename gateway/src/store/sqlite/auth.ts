import type { AuthApiToken, AuthSession, AuthStore, AuthUser } from '../ports.js';
import type { Db, Migration } from './db.js';
import { statementCache } from './stmt-cache.js';

/**
 * The access tables' schema steps (ids 'auth-NNN'), in the one ordered list (./migrations.ts). Before
 * issue 14 the adapter applied them itself when the access module was built: a database from then has
 * them recorded under the same ids and gets nothing again.
 */
export const authSqliteMigrations: readonly Migration[] = [
  {
    id: 'auth-001',
    up: (db) => {
      db.exec(`
        CREATE TABLE auth_users (
          user_id TEXT PRIMARY KEY,
          name TEXT NOT NULL UNIQUE,
          display_name TEXT NOT NULL,
          role TEXT NOT NULL,
          areas_json TEXT NOT NULL,
          provider TEXT,
          password_hash TEXT,
          oidc_subject TEXT UNIQUE,
          disabled_at INTEGER,
          created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE auth_sessions (
          id_hash TEXT PRIMARY KEY,
          user_id TEXT NOT NULL,
          csrf TEXT NOT NULL,
          created_at_ms INTEGER NOT NULL,
          expires_at_ms INTEGER NOT NULL,
          last_seen_ms INTEGER NOT NULL
        );
        CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
        CREATE TABLE auth_tokens (
          token_id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          role TEXT NOT NULL,
          areas_json TEXT NOT NULL,
          provider TEXT,
          secret_hash TEXT NOT NULL,
          created_by TEXT NOT NULL,
          created_at_ms INTEGER NOT NULL,
          expires_at_ms INTEGER,
          revoked_at_ms INTEGER
        );
      `);
    },
  },
  {
    // issue 13: a care-staff account is bound to one staff member (their own registrations)
    id: 'auth-002',
    up: (db) => {
      db.exec('ALTER TABLE auth_users ADD COLUMN staff_ref TEXT');
    },
  },
];

/** Appended after the audit log's step (released ids keep their order: ./migrations.ts). */
export const authFailureMigrations: readonly Migration[] = [
  {
    // issue 14: failed logins counted in the database (shared by the instances on PostgreSQL)
    id: 'auth-003',
    up: (db) => {
      db.exec(`
        CREATE TABLE auth_login_failures (
          name_key TEXT PRIMARY KEY,
          failures INTEGER NOT NULL,
          since_ms INTEGER NOT NULL
        );
        CREATE INDEX auth_login_failures_since ON auth_login_failures (since_ms);
      `);
    },
  },
];

/** One more failed login: a new window when the last began more than $3 ms before $2 (both engines). */
export const NOTE_LOGIN_FAILURE = `INSERT INTO auth_login_failures (name_key, failures, since_ms) VALUES (?, 1, ?)
  ON CONFLICT (name_key) DO UPDATE SET
    failures = CASE WHEN excluded.since_ms - auth_login_failures.since_ms > ? THEN 1
                    ELSE auth_login_failures.failures + 1 END,
    since_ms = CASE WHEN excluded.since_ms - auth_login_failures.since_ms > ? THEN excluded.since_ms
                    ELSE auth_login_failures.since_ms END`;
export const PRUNE_LOGIN_FAILURES = 'DELETE FROM auth_login_failures WHERE since_ms < ?';

/** auth_users as both engines store it (the PostgreSQL adapter maps the same columns). */
export interface AuthUserRow {
  user_id: string;
  name: string;
  display_name: string;
  role: string;
  areas_json: string;
  provider: string | null;
  staff_ref: string | null;
  password_hash: string | null;
  oidc_subject: string | null;
  disabled_at: number | null;
  created_at_ms: number;
}
export interface AuthSessionRow {
  id_hash: string;
  user_id: string;
  csrf: string;
  created_at_ms: number;
  expires_at_ms: number;
  last_seen_ms: number;
}
export interface AuthTokenRow {
  token_id: string;
  name: string;
  role: string;
  areas_json: string;
  provider: string | null;
  secret_hash: string;
  created_by: string;
  created_at_ms: number;
  expires_at_ms: number | null;
  revoked_at_ms: number | null;
}

const areas = (json: string): string[] => JSON.parse(json) as string[];

/** Row mappings shared by both adapters (the PostgreSQL one reads the same column names). */
export const authRows = {
  user: <R extends string>(r: AuthUserRow, parseRole: (s: string) => R): AuthUser<R> => ({
    userId: r.user_id,
    name: r.name,
    displayName: r.display_name,
    role: parseRole(r.role),
    areas: areas(r.areas_json),
    provider: r.provider,
    staffRef: r.staff_ref ?? null,
    passwordHash: r.password_hash,
    oidcSubject: r.oidc_subject,
    disabledAt: r.disabled_at,
    createdAtMs: r.created_at_ms,
  }),
  session: (r: AuthSessionRow): AuthSession => ({
    idHash: r.id_hash,
    userId: r.user_id,
    csrf: r.csrf,
    createdAtMs: r.created_at_ms,
    expiresAtMs: r.expires_at_ms,
    lastSeenMs: r.last_seen_ms,
  }),
  token: <R extends string>(r: AuthTokenRow, parseRole: (s: string) => R): AuthApiToken<R> => ({
    tokenId: r.token_id,
    name: r.name,
    role: parseRole(r.role),
    areas: areas(r.areas_json),
    provider: r.provider,
    secretHash: r.secret_hash,
    createdBy: r.created_by,
    createdAtMs: r.created_at_ms,
    expiresAtMs: r.expires_at_ms,
    revokedAtMs: r.revoked_at_ms,
  }),
  /** The user's columns in the order of USER_COLUMNS. */
  userValues: (u: AuthUser): unknown[] => [
    u.userId,
    u.name,
    u.displayName,
    u.role,
    JSON.stringify(u.areas),
    u.provider,
    u.passwordHash,
    u.oidcSubject,
    u.disabledAt,
    u.createdAtMs,
    u.staffRef,
  ],
  tokenValues: (t: AuthApiToken): unknown[] => [
    t.tokenId,
    t.name,
    t.role,
    JSON.stringify(t.areas),
    t.provider,
    t.secretHash,
    t.createdBy,
    t.createdAtMs,
    t.expiresAtMs,
    t.revokedAtMs,
  ],
};

/** auth_users' columns in the order of authRows.userValues. */
export const USER_COLUMNS =
  'user_id, name, display_name, role, areas_json, provider, password_hash, oidc_subject, disabled_at, created_at_ms, staff_ref';
/** auth_tokens' columns in the order of authRows.tokenValues. */
export const TOKEN_COLUMNS =
  'token_id, name, role, areas_json, provider, secret_hash, created_by, created_at_ms, expires_at_ms, revoked_at_ms';
/** One row of the session joined to its account: the session's columns prefixed s_. */
export const SESSION_JOIN = `SELECT u.*, s.id_hash AS s_id_hash, s.user_id AS s_user_id, s.csrf AS s_csrf,
  s.created_at_ms AS s_created_at_ms, s.expires_at_ms AS s_expires_at_ms, s.last_seen_ms AS s_last_seen_ms
  FROM auth_sessions s JOIN auth_users u ON u.user_id = s.user_id`;
export type SessionJoinRow = AuthUserRow & { [K in keyof AuthSessionRow as `s_${K}`]: AuthSessionRow[K] };
export const sessionOfJoin = (r: SessionJoinRow): AuthSession =>
  authRows.session({
    id_hash: r.s_id_hash,
    user_id: r.s_user_id,
    csrf: r.s_csrf,
    created_at_ms: r.s_created_at_ms,
    expires_at_ms: r.s_expires_at_ms,
    last_seen_ms: r.s_last_seen_ms,
  });

/**
 * SQLite adapter of AuthStore: synchronous, one statement (one implicit transaction) per unit, every
 * statement prepared once (the session look-up runs on every request of the web app).
 */
export class SqliteAuthStore<R extends string = string> implements AuthStore<R> {
  private readonly st;
  constructor(
    db: Db,
    private readonly parseRole: (s: string) => R = (s) => s as R,
  ) {
    this.st = statementCache(db);
  }

  private user = (r: AuthUserRow | undefined): AuthUser<R> | null =>
    r ? authRows.user(r, this.parseRole) : null;

  countUsers(): number {
    return this.st('SELECT count(*) FROM auth_users').pluck().get() as number;
  }
  insertUser(u: AuthUser<R>): void {
    this.st(`INSERT INTO auth_users (${USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      ...authRows.userValues(u),
    );
  }
  updateUser(u: AuthUser<R>): void {
    const [userId, ...rest] = authRows.userValues(u);
    this.st(
      `UPDATE auth_users SET name = ?, display_name = ?, role = ?, areas_json = ?, provider = ?,
       password_hash = ?, oidc_subject = ?, disabled_at = ?, created_at_ms = ?, staff_ref = ? WHERE user_id = ?`,
    ).run(...rest, userId);
  }
  userById(userId: string): AuthUser<R> | null {
    return this.user(this.st('SELECT * FROM auth_users WHERE user_id = ?').get(userId) as AuthUserRow);
  }
  userByName(name: string): AuthUser<R> | null {
    return this.user(this.st('SELECT * FROM auth_users WHERE name = ?').get(name) as AuthUserRow);
  }
  userByOidcSubject(subject: string): AuthUser<R> | null {
    return this.user(this.st('SELECT * FROM auth_users WHERE oidc_subject = ?').get(subject) as AuthUserRow);
  }
  listUsers(): AuthUser<R>[] {
    return (this.st('SELECT * FROM auth_users ORDER BY name').all() as AuthUserRow[]).map((r) =>
      authRows.user(r, this.parseRole),
    );
  }

  insertSession(s: AuthSession): void {
    this.st(
      `INSERT INTO auth_sessions (id_hash, user_id, csrf, created_at_ms, expires_at_ms, last_seen_ms)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(s.idHash, s.userId, s.csrf, s.createdAtMs, s.expiresAtMs, s.lastSeenMs);
  }
  sessionWithUser(idHash: string): { session: AuthSession; user: AuthUser<R> } | null {
    const r = this.st(`${SESSION_JOIN} WHERE s.id_hash = ?`).get(idHash) as SessionJoinRow | undefined;
    return r ? { session: sessionOfJoin(r), user: authRows.user(r, this.parseRole) } : null;
  }
  touchSession(idHash: string, lastSeenMs: number): void {
    this.st('UPDATE auth_sessions SET last_seen_ms = ? WHERE id_hash = ?').run(lastSeenMs, idHash);
  }
  deleteSession(idHash: string): void {
    this.st('DELETE FROM auth_sessions WHERE id_hash = ?').run(idHash);
  }
  deleteSessionsOf(userId: string): number {
    return this.st('DELETE FROM auth_sessions WHERE user_id = ?').run(userId).changes;
  }
  deleteExpiredSessions(nowMs: number): number {
    return this.st('DELETE FROM auth_sessions WHERE expires_at_ms <= ?').run(nowMs).changes;
  }

  insertToken(t: AuthApiToken<R>): void {
    this.st(`INSERT INTO auth_tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      ...authRows.tokenValues(t),
    );
  }
  tokenById(tokenId: string): AuthApiToken<R> | null {
    const r = this.st('SELECT * FROM auth_tokens WHERE token_id = ?').get(tokenId) as
      AuthTokenRow | undefined;
    return r ? authRows.token(r, this.parseRole) : null;
  }
  listTokens(): AuthApiToken<R>[] {
    return (this.st('SELECT * FROM auth_tokens ORDER BY created_at_ms').all() as AuthTokenRow[]).map((r) =>
      authRows.token(r, this.parseRole),
    );
  }
  revokeToken(tokenId: string, atMs: number): boolean {
    return (
      this.st('UPDATE auth_tokens SET revoked_at_ms = ? WHERE token_id = ? AND revoked_at_ms IS NULL').run(
        atMs,
        tokenId,
      ).changes > 0
    );
  }

  loginFailures(key: string, nowMs: number, windowMs: number): number {
    const r = this.st('SELECT failures, since_ms FROM auth_login_failures WHERE name_key = ?').get(key) as
      { failures: number; since_ms: number } | undefined;
    return r && nowMs - r.since_ms <= windowMs ? r.failures : 0;
  }
  noteLoginFailure(key: string, nowMs: number, windowMs: number): void {
    this.st(PRUNE_LOGIN_FAILURES).run(nowMs - 2 * windowMs);
    this.st(NOTE_LOGIN_FAILURE).run(key, nowMs, windowMs, windowMs);
  }
  clearLoginFailures(key: string): void {
    this.st('DELETE FROM auth_login_failures WHERE name_key = ?').run(key);
  }
}
