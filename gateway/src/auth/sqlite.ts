import { applyMigrations, type Db, type Migration } from '../store/sqlite/db.js';
import { Role } from './roles.js';
import type { ApiToken, AuthStore, Session, User } from './store.js';

/** The auth tables' schema steps (ids 'auth-NNN'), applied by the adapter until they join store/sqlite. */
export const authMigrations: readonly Migration[] = [
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

interface UserRow {
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
interface SessionRow {
  id_hash: string;
  user_id: string;
  csrf: string;
  created_at_ms: number;
  expires_at_ms: number;
  last_seen_ms: number;
}
interface TokenRow {
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

const toUser = (r: UserRow): User => ({
  userId: r.user_id,
  name: r.name,
  displayName: r.display_name,
  role: Role.parse(r.role),
  areas: areas(r.areas_json),
  provider: r.provider,
  staffRef: r.staff_ref ?? null,
  passwordHash: r.password_hash,
  oidcSubject: r.oidc_subject,
  disabledAt: r.disabled_at,
  createdAtMs: r.created_at_ms,
});
const toSession = (r: SessionRow): Session => ({
  idHash: r.id_hash,
  userId: r.user_id,
  csrf: r.csrf,
  createdAtMs: r.created_at_ms,
  expiresAtMs: r.expires_at_ms,
  lastSeenMs: r.last_seen_ms,
});
const toToken = (r: TokenRow): ApiToken => ({
  tokenId: r.token_id,
  name: r.name,
  role: Role.parse(r.role),
  areas: areas(r.areas_json),
  provider: r.provider,
  secretHash: r.secret_hash,
  createdBy: r.created_by,
  createdAtMs: r.created_at_ms,
  expiresAtMs: r.expires_at_ms,
  revokedAtMs: r.revoked_at_ms,
});

const userParams = (u: User) => ({
  user_id: u.userId,
  name: u.name,
  display_name: u.displayName,
  role: u.role,
  areas_json: JSON.stringify(u.areas),
  provider: u.provider,
  staff_ref: u.staffRef,
  password_hash: u.passwordHash,
  oidc_subject: u.oidcSubject,
  disabled_at: u.disabledAt,
  created_at_ms: u.createdAtMs,
});

/** SQLite adapter of AuthStore: synchronous, one statement (one implicit transaction) per unit. */
export class SqliteAuthStore implements AuthStore {
  constructor(private readonly db: Db) {
    applyMigrations(db, authMigrations);
  }

  countUsers(): number {
    return this.db.prepare('SELECT count(*) FROM auth_users').pluck().get() as number;
  }
  insertUser(u: User): void {
    this.db
      .prepare(
        `INSERT INTO auth_users (user_id, name, display_name, role, areas_json, provider, password_hash,
         oidc_subject, disabled_at, created_at_ms, staff_ref) VALUES (@user_id, @name, @display_name, @role,
         @areas_json, @provider, @password_hash, @oidc_subject, @disabled_at, @created_at_ms, @staff_ref)`,
      )
      .run(userParams(u));
  }
  updateUser(u: User): void {
    this.db
      .prepare(
        `UPDATE auth_users SET name=@name, display_name=@display_name, role=@role, areas_json=@areas_json,
         provider=@provider, password_hash=@password_hash, oidc_subject=@oidc_subject, disabled_at=@disabled_at,
         staff_ref=@staff_ref WHERE user_id=@user_id`,
      )
      .run(userParams(u));
  }
  private oneUser(where: string, value: string): User | null {
    const r = this.db.prepare(`SELECT * FROM auth_users WHERE ${where} = ?`).get(value) as
      UserRow | undefined;
    return r ? toUser(r) : null;
  }
  userById(userId: string): User | null {
    return this.oneUser('user_id', userId);
  }
  userByName(name: string): User | null {
    return this.oneUser('name', name);
  }
  userByOidcSubject(subject: string): User | null {
    return this.oneUser('oidc_subject', subject);
  }
  listUsers(): User[] {
    return (this.db.prepare('SELECT * FROM auth_users ORDER BY name').all() as UserRow[]).map(toUser);
  }

  insertSession(s: Session): void {
    this.db
      .prepare('INSERT INTO auth_sessions VALUES (?, ?, ?, ?, ?, ?)')
      .run(s.idHash, s.userId, s.csrf, s.createdAtMs, s.expiresAtMs, s.lastSeenMs);
  }
  sessionByHash(idHash: string): Session | null {
    const r = this.db.prepare('SELECT * FROM auth_sessions WHERE id_hash = ?').get(idHash) as
      SessionRow | undefined;
    return r ? toSession(r) : null;
  }
  touchSession(idHash: string, lastSeenMs: number): void {
    this.db.prepare('UPDATE auth_sessions SET last_seen_ms = ? WHERE id_hash = ?').run(lastSeenMs, idHash);
  }
  deleteSession(idHash: string): void {
    this.db.prepare('DELETE FROM auth_sessions WHERE id_hash = ?').run(idHash);
  }
  deleteSessionsOf(userId: string): number {
    return this.db.prepare('DELETE FROM auth_sessions WHERE user_id = ?').run(userId).changes;
  }
  deleteExpiredSessions(nowMs: number): number {
    return this.db.prepare('DELETE FROM auth_sessions WHERE expires_at_ms <= ?').run(nowMs).changes;
  }

  insertToken(t: ApiToken): void {
    this.db
      .prepare('INSERT INTO auth_tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(
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
      );
  }
  tokenById(tokenId: string): ApiToken | null {
    const r = this.db.prepare('SELECT * FROM auth_tokens WHERE token_id = ?').get(tokenId) as
      TokenRow | undefined;
    return r ? toToken(r) : null;
  }
  listTokens(): ApiToken[] {
    return (this.db.prepare('SELECT * FROM auth_tokens ORDER BY created_at_ms').all() as TokenRow[]).map(
      toToken,
    );
  }
  revokeToken(tokenId: string, atMs: number): boolean {
    return (
      this.db
        .prepare('UPDATE auth_tokens SET revoked_at_ms = ? WHERE token_id = ? AND revoked_at_ms IS NULL')
        .run(atMs, tokenId).changes > 0
    );
  }
}
