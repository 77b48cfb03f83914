import type { AuthApiToken, AuthSession, AuthStore, AuthUser } from '../ports.js';
import {
  authRows,
  NOTE_LOGIN_FAILURE,
  PRUNE_LOGIN_FAILURES,
  SESSION_JOIN,
  sessionOfJoin,
  TOKEN_COLUMNS,
  USER_COLUMNS,
  type AuthTokenRow,
  type AuthUserRow,
  type SessionJoinRow,
} from '../sqlite/auth.js';
import type { PgPool } from './db.js';

/** `?` placeholders as $1, $2, … */
const numbered = (sql: string): string => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
};

/**
 * PostgreSQL adapter of AuthStore (store.engine postgres): the accounts, sessions and API tokens every
 * instance shares, so an account made through one instance logs in on all of them and a session ended
 * on one (logout, password change, account disabled) is refused by all from the next request on:
 * nothing is cached, each request's session look-up is one statement (a named prepared statement, the
 * session joined to its account). Each method is one statement, i.e. one implicit transaction.
 */
export class PgAuthStore<R extends string = string> implements AuthStore<R> {
  constructor(
    private readonly pool: PgPool,
    private readonly parseRole: (s: string) => R = (s) => s as R,
  ) {}

  private async rows<T>(name: string, text: string, values: unknown[]): Promise<T[]> {
    return (await this.pool.query({ name: `vt-auth-${name}`, text, values })).rows as T[];
  }
  private async count(text: string, values: unknown[]): Promise<number> {
    return (await this.pool.query(text, values)).rowCount ?? 0;
  }
  private async oneUser(name: string, where: string, value: string): Promise<AuthUser<R> | null> {
    const [r] = await this.rows<AuthUserRow>(name, `SELECT * FROM auth_users WHERE ${where} = $1`, [value]);
    return r ? authRows.user(r, this.parseRole) : null;
  }

  async countUsers(): Promise<number> {
    const [r] = await this.rows<{ n: number }>('count', 'SELECT count(*)::int AS n FROM auth_users', []);
    return r?.n ?? 0;
  }
  async insertUser(u: AuthUser<R>): Promise<void> {
    await this.pool.query(
      numbered(`INSERT INTO auth_users (${USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      authRows.userValues(u),
    );
  }
  async updateUser(u: AuthUser<R>): Promise<void> {
    const [userId, ...rest] = authRows.userValues(u);
    await this.pool.query(
      numbered(`UPDATE auth_users SET name = ?, display_name = ?, role = ?, areas_json = ?, provider = ?,
       password_hash = ?, oidc_subject = ?, disabled_at = ?, created_at_ms = ?, staff_ref = ? WHERE user_id = ?`),
      [...rest, userId],
    );
  }
  userById(userId: string): Promise<AuthUser<R> | null> {
    return this.oneUser('user-id', 'user_id', userId);
  }
  userByName(name: string): Promise<AuthUser<R> | null> {
    return this.oneUser('user-name', 'name', name);
  }
  userByOidcSubject(subject: string): Promise<AuthUser<R> | null> {
    return this.oneUser('user-oidc', 'oidc_subject', subject);
  }
  async listUsers(): Promise<AuthUser<R>[]> {
    return (await this.rows<AuthUserRow>('users', 'SELECT * FROM auth_users ORDER BY name', [])).map((r) =>
      authRows.user(r, this.parseRole),
    );
  }

  async insertSession(s: AuthSession): Promise<void> {
    await this.pool.query(
      `INSERT INTO auth_sessions (id_hash, user_id, csrf, created_at_ms, expires_at_ms, last_seen_ms)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [s.idHash, s.userId, s.csrf, s.createdAtMs, s.expiresAtMs, s.lastSeenMs],
    );
  }
  async sessionWithUser(idHash: string): Promise<{ session: AuthSession; user: AuthUser<R> } | null> {
    const [r] = await this.rows<SessionJoinRow>('session', `${SESSION_JOIN} WHERE s.id_hash = $1`, [idHash]);
    return r ? { session: sessionOfJoin(r), user: authRows.user(r, this.parseRole) } : null;
  }
  async touchSession(idHash: string, lastSeenMs: number): Promise<void> {
    await this.rows('touch', 'UPDATE auth_sessions SET last_seen_ms = $1 WHERE id_hash = $2', [
      lastSeenMs,
      idHash,
    ]);
  }
  async deleteSession(idHash: string): Promise<void> {
    await this.pool.query('DELETE FROM auth_sessions WHERE id_hash = $1', [idHash]);
  }
  deleteSessionsOf(userId: string): Promise<number> {
    return this.count('DELETE FROM auth_sessions WHERE user_id = $1', [userId]);
  }
  deleteExpiredSessions(nowMs: number): Promise<number> {
    return this.count('DELETE FROM auth_sessions WHERE expires_at_ms <= $1', [nowMs]);
  }

  async insertToken(t: AuthApiToken<R>): Promise<void> {
    await this.pool.query(
      numbered(`INSERT INTO auth_tokens (${TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      authRows.tokenValues(t),
    );
  }
  async tokenById(tokenId: string): Promise<AuthApiToken<R> | null> {
    const [r] = await this.rows<AuthTokenRow>('token', 'SELECT * FROM auth_tokens WHERE token_id = $1', [
      tokenId,
    ]);
    return r ? authRows.token(r, this.parseRole) : null;
  }
  async listTokens(): Promise<AuthApiToken<R>[]> {
    return (
      await this.rows<AuthTokenRow>(
        'tokens',
        'SELECT * FROM auth_tokens ORDER BY created_at_ms, token_id',
        [],
      )
    ).map((r) => authRows.token(r, this.parseRole));
  }
  async loginFailures(key: string, nowMs: number, windowMs: number): Promise<number> {
    const [r] = await this.rows<{ failures: number; since_ms: number }>(
      'failures',
      'SELECT failures, since_ms FROM auth_login_failures WHERE name_key = $1',
      [key],
    );
    return r && nowMs - r.since_ms <= windowMs ? r.failures : 0;
  }
  async noteLoginFailure(key: string, nowMs: number, windowMs: number): Promise<void> {
    await this.pool.query(numbered(PRUNE_LOGIN_FAILURES), [nowMs - 2 * windowMs]);
    // one statement: two instances counting the same name at once both count
    await this.pool.query(numbered(NOTE_LOGIN_FAILURE), [key, nowMs, windowMs, windowMs]);
  }
  async clearLoginFailures(key: string): Promise<void> {
    await this.pool.query('DELETE FROM auth_login_failures WHERE name_key = $1', [key]);
  }
  async revokeToken(tokenId: string, atMs: number): Promise<boolean> {
    return (
      (await this.count(
        'UPDATE auth_tokens SET revoked_at_ms = $1 WHERE token_id = $2 AND revoked_at_ms IS NULL',
        [atMs, tokenId],
      )) > 0
    );
  }
}
