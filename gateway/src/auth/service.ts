import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Principal } from '../admin/types.js';
import type { AuditLog } from '../audit/log.js';
import { DEFAULT_COST, hashPassword, passwordProblem, type ScryptCost, verifyPassword } from './password.js';
import { Role } from './roles.js';
import type { ApiToken, AuthStore, Session, User } from './store.js';

export const SESSION_COOKIE = 'vt_session';
export const CSRF_HEADER = 'x-csrf-token';
const UNSAFE = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

export interface AuthServiceOptions {
  store: AuthStore;
  audit: AuditLog;
  now: () => number;
  /** A session ends after this long without a request. Default 30 min. */
  sessionIdleMs?: number;
  /** A session ends this long after login whatever happens. Default 12 h. */
  sessionMaxMs?: number;
  /** Mark cookies Secure (set when the server speaks HTTPS). */
  secureCookies?: boolean;
  hashCost?: ScryptCost;
  /** Failed logins per name within 15 minutes before the name is refused for the rest of the window. */
  maxFailures?: number;
}

export const NewUser = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9._@-]{2,64}$/, 'name: 2-64 characters of a-z 0-9 . _ @ - (lower case)')
      .describe('Login name'),
    displayName: z.string().min(1).max(200),
    role: Role,
    areas: z.array(z.string().min(1).max(100)).max(200).default([]),
    provider: z.string().min(1).max(100).nullable().default(null),
    staffRef: z.string().min(1).max(100).nullable().default(null).describe('Care staff: the staff member'),
    password: z.string().optional().describe('Local password (≥ 12 characters); omit for SSO-only accounts'),
    reason: z.string().max(500).optional(),
  })
  .strict();
export type NewUser = z.input<typeof NewUser>;

export const UserPatch = z
  .object({
    displayName: z.string().min(1).max(200).optional(),
    role: Role.optional(),
    areas: z.array(z.string().min(1).max(100)).max(200).optional(),
    provider: z.string().min(1).max(100).nullable().optional(),
    staffRef: z.string().min(1).max(100).nullable().optional(),
    password: z.string().optional(),
    disabled: z.boolean().optional(),
    reason: z.string().min(1).max(500).describe('Why (kept in the audit log)'),
  })
  .strict();
export type UserPatch = z.infer<typeof UserPatch>;

export const NewToken = z
  .object({
    name: z.string().regex(/^[a-z0-9._-]{2,64}$/, 'name: 2-64 characters of a-z 0-9 . _ -'),
    role: Role,
    areas: z.array(z.string().min(1).max(100)).max(200).default([]),
    provider: z.string().min(1).max(100).nullable().default(null),
    expiresInDays: z.number().int().min(1).max(3650).optional(),
    reason: z.string().max(500).optional(),
  })
  .strict();

export class AuthError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
/** Failed logins are counted per name within this window (from the first failure). */
const FAILURE_WINDOW_MS = 15 * 60_000;
const id = (prefix: string) => `${prefix}_${randomBytes(9).toString('base64url')}`;

/** What an account looks like outside the store (no hash). */
export function publicUser(u: User) {
  return {
    userId: u.userId,
    name: u.name,
    displayName: u.displayName,
    role: u.role,
    areas: u.areas,
    provider: u.provider,
    staffRef: u.staffRef,
    hasPassword: u.passwordHash !== null,
    sso: u.oidcSubject !== null,
    disabled: u.disabledAt !== null,
    createdAtMs: u.createdAtMs,
  };
}
const publicToken = (t: ApiToken) => ({
  tokenId: t.tokenId,
  name: t.name,
  role: t.role,
  areas: t.areas,
  provider: t.provider,
  createdBy: t.createdBy,
  createdAtMs: t.createdAtMs,
  expiresAtMs: t.expiresAtMs,
  revokedAtMs: t.revokedAtMs,
});

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 1) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      /* a malformed cookie is ignored */
    }
  }
  return out;
}

/** Users, sessions (cookie + CSRF token), scoped API tokens; every change goes to the audit log. */
export class AuthService {
  private readonly idleMs: number;
  private readonly maxMs: number;
  private dummyHash: Promise<string> | null = null;

  constructor(private readonly opts: AuthServiceOptions) {
    this.idleMs = opts.sessionIdleMs ?? 30 * 60_000;
    this.maxMs = opts.sessionMaxMs ?? 12 * 3600_000;
  }

  private cost(): ScryptCost {
    return this.opts.hashCost ?? DEFAULT_COST;
  }

  async createUser(actor: string, input: NewUser): Promise<User> {
    const v = NewUser.parse(input);
    if (await this.opts.store.userByName(v.name))
      throw new AuthError(409, `user '${v.name}' exists: pick another name`);
    if (v.password !== undefined) {
      const problem = passwordProblem(v.password);
      if (problem) throw new AuthError(400, problem);
    }
    const user: User = {
      userId: id('u'),
      name: v.name,
      displayName: v.displayName,
      role: v.role,
      areas: v.areas,
      provider: v.provider,
      staffRef: v.staffRef,
      passwordHash: v.password === undefined ? null : await hashPassword(v.password, this.cost()),
      oidcSubject: null,
      disabledAt: null,
      createdAtMs: this.opts.now(),
    };
    await this.opts.store.insertUser(user);
    await this.opts.audit.record({
      actor,
      action: 'user.create',
      target: `user:${user.userId}`,
      after: publicUser(user),
      reason: v.reason ?? null,
    });
    return user;
  }

  /** The first admin (CLI): refused once any user exists. */
  async bootstrapAdmin(actor: string, name: string, password: string): Promise<User> {
    if ((await this.opts.store.countUsers()) > 0) {
      throw new AuthError(409, 'users exist already: log in as an admin and add users in the web app');
    }
    return this.createUser(actor, {
      name,
      displayName: name,
      role: 'admin',
      password,
      reason: 'first admin',
    });
  }

  async updateUser(actor: string, userId: string, patch: UserPatch): Promise<User> {
    const p = UserPatch.parse(patch);
    const before = await this.opts.store.userById(userId);
    if (!before) throw new AuthError(404, `no user ${userId}`);
    if (p.password !== undefined) {
      const problem = passwordProblem(p.password);
      if (problem) throw new AuthError(400, problem);
    }
    const after: User = {
      ...before,
      ...(p.displayName !== undefined ? { displayName: p.displayName } : {}),
      ...(p.role !== undefined ? { role: p.role } : {}),
      ...(p.areas !== undefined ? { areas: p.areas } : {}),
      ...(p.provider !== undefined ? { provider: p.provider } : {}),
      ...(p.staffRef !== undefined ? { staffRef: p.staffRef } : {}),
      ...(p.password !== undefined ? { passwordHash: await hashPassword(p.password, this.cost()) } : {}),
      ...(p.disabled !== undefined
        ? { disabledAt: p.disabled ? (before.disabledAt ?? this.opts.now()) : null }
        : {}),
    };
    await this.opts.store.updateUser(after);
    // a changed role, scope, password or a disabled account ends the user's sessions
    if (
      p.role !== undefined ||
      p.areas !== undefined ||
      p.provider !== undefined ||
      p.staffRef !== undefined ||
      p.password !== undefined ||
      p.disabled === true
    ) {
      await this.opts.store.deleteSessionsOf(userId);
    }
    await this.opts.audit.record({
      actor,
      action: 'user.update',
      target: `user:${userId}`,
      before: publicUser(before),
      after: { ...publicUser(after), passwordChanged: p.password !== undefined },
      reason: p.reason,
    });
    return after;
  }

  async listUsers() {
    return (await this.opts.store.listUsers()).map(publicUser);
  }

  // Failed logins per name, counted in the store (on PostgreSQL: by every instance together), under a
  // hash of the name: whatever was typed into the name field is not stored.
  private async failed(name: string): Promise<boolean> {
    const n = await this.opts.store.loginFailures(
      sha256(`login:${name}`),
      this.opts.now(),
      FAILURE_WINDOW_MS,
    );
    return n >= (this.opts.maxFailures ?? 10);
  }

  private async noteFailure(name: string): Promise<void> {
    await this.opts.store.noteLoginFailure(sha256(`login:${name}`), this.opts.now(), FAILURE_WINDOW_MS);
  }

  /** Local login: a new session, or an AuthError (401 wrong, 429 too many failures). */
  async login(name: string, password: string): Promise<{ cookie: string; csrf: string; user: User }> {
    if (await this.failed(name))
      throw new AuthError(429, 'too many failed logins for this name: wait 15 minutes');
    const user = await this.opts.store.userByName(name);
    // verify against a dummy hash for unknown names, so the answer time does not tell which names exist
    this.dummyHash ??= hashPassword('not-a-password-of-anyone', this.cost());
    const ok = await verifyPassword(password, user?.passwordHash ?? (await this.dummyHash));
    if (!user || !user.passwordHash || !ok || user.disabledAt !== null) {
      await this.noteFailure(name);
      throw new AuthError(401, 'wrong name or password');
    }
    await this.opts.store.clearLoginFailures(sha256(`login:${name}`));
    await this.opts.audit.record({
      actor: `user:${user.name}`,
      action: 'session.login',
      target: `user:${user.userId}`,
    });
    return { ...(await this.newSession(user)), user };
  }

  async newSession(user: User): Promise<{ cookie: string; csrf: string }> {
    const now = this.opts.now();
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const s: Session = {
      idHash: sha256(cookie),
      userId: user.userId,
      csrf,
      createdAtMs: now,
      expiresAtMs: now + this.maxMs,
      lastSeenMs: now,
    };
    await this.opts.store.deleteExpiredSessions(now);
    await this.opts.store.insertSession(s);
    return { cookie, csrf };
  }

  async logout(cookie: string): Promise<void> {
    await this.opts.store.deleteSession(sha256(cookie));
  }

  cookieHeader(value: string, maxAgeS?: number): string {
    const parts = [`${SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
    if (this.opts.secureCookies) parts.push('Secure');
    if (maxAgeS !== undefined) parts.push(`Max-Age=${maxAgeS}`);
    return parts.join('; ');
  }

  async createToken(
    actor: string,
    input: z.input<typeof NewToken>,
  ): Promise<{ token: string; tokenId: string }> {
    const v = NewToken.parse(input);
    const tokenId = id('t');
    const secret = randomBytes(32).toString('base64url');
    const now = this.opts.now();
    const t: ApiToken = {
      tokenId,
      name: v.name,
      role: v.role,
      areas: v.areas,
      provider: v.provider,
      secretHash: sha256(secret),
      createdBy: actor,
      createdAtMs: now,
      expiresAtMs: v.expiresInDays ? now + v.expiresInDays * 86_400_000 : null,
      revokedAtMs: null,
    };
    await this.opts.store.insertToken(t);
    await this.opts.audit.record({
      actor,
      action: 'token.create',
      target: `token:${tokenId}`,
      after: publicToken(t),
      reason: v.reason ?? null,
    });
    return { token: `vt_${tokenId}.${secret}`, tokenId };
  }

  async listTokens() {
    return (await this.opts.store.listTokens()).map(publicToken);
  }

  async revokeToken(actor: string, tokenId: string, reason: string | null): Promise<boolean> {
    const before = await this.opts.store.tokenById(tokenId);
    if (!before) return false;
    const done = await this.opts.store.revokeToken(tokenId, this.opts.now());
    if (done) {
      await this.opts.audit.record({
        actor,
        action: 'token.revoke',
        target: `token:${tokenId}`,
        before: publicToken(before),
        reason,
      });
    }
    return true;
  }

  /** The session behind a cookie, or null (unknown, idle too long, past its maximum, user disabled). */
  async session(cookie: string): Promise<{ session: Session; user: User } | null> {
    const now = this.opts.now();
    // one look-up per request: the session with its account (a prepared statement on SQLite)
    const found = await this.opts.store.sessionWithUser(sha256(cookie));
    if (!found) return null;
    const { session: s, user } = found;
    if (now >= s.expiresAtMs || now - s.lastSeenMs >= this.idleMs) {
      await this.opts.store.deleteSession(s.idHash);
      return null;
    }
    if (user.disabledAt !== null) return null;
    if (now - s.lastSeenMs > 10_000) await this.opts.store.touchSession(s.idHash, now);
    return { session: s, user };
  }

  /** For AdminServer: API token (Bearer vt_…) or session cookie; unsafe methods on a session need the CSRF header. */
  authenticate = async (req: {
    headers: Record<string, string | string[] | undefined>;
    method: string;
  }): Promise<Principal | null> => {
    const authz = req.headers.authorization;
    if (typeof authz === 'string' && authz.startsWith('Bearer vt_'))
      return this.byToken(authz.slice(10).trim());
    const cookie = parseCookies(typeof req.headers.cookie === 'string' ? req.headers.cookie : undefined)[
      SESSION_COOKIE
    ];
    if (!cookie) return null;
    const found = await this.session(cookie);
    if (!found) return null;
    if (UNSAFE.has(req.method)) {
      const sent = req.headers[CSRF_HEADER];
      const a = Buffer.from(typeof sent === 'string' ? sent : '');
      const b = Buffer.from(found.session.csrf);
      if (a.length !== b.length || !timingSafeEqual(a, b)) {
        throw new AuthError(
          403,
          'CSRF token missing or wrong: send the X-CSRF-Token header given by /api/auth/me',
        );
      }
    }
    const u = found.user;
    return {
      kind: 'session',
      actor: `user:${u.name}`,
      role: u.role,
      areas: u.areas,
      ...(u.provider ? { provider: u.provider } : {}),
      ...(u.staffRef ? { staffRef: u.staffRef } : {}),
      userId: u.userId,
    };
  };

  private async byToken(raw: string): Promise<Principal | null> {
    const dot = raw.indexOf('.');
    if (dot < 0) return null;
    const t = await this.opts.store.tokenById(raw.slice(0, dot));
    if (!t || t.revokedAtMs !== null || (t.expiresAtMs !== null && this.opts.now() >= t.expiresAtMs))
      return null;
    const a = Buffer.from(sha256(raw.slice(dot + 1)));
    if (!timingSafeEqual(a, Buffer.from(t.secretHash))) return null;
    return {
      kind: 'api-token',
      actor: `token:${t.name}`,
      role: t.role,
      areas: t.areas,
      ...(t.provider ? { provider: t.provider } : {}),
    };
  }

  /** SSO: the account bound to this OIDC subject, or an SSO-only account of that name (bound now). */
  async userForOidc(subject: string, name: string | undefined): Promise<User | null> {
    const bound = await this.opts.store.userByOidcSubject(subject);
    if (bound) return bound.disabledAt === null ? bound : null;
    if (!name) return null;
    const byName = await this.opts.store.userByName(name.toLowerCase());
    if (
      !byName ||
      byName.oidcSubject !== null ||
      byName.passwordHash !== null ||
      byName.disabledAt !== null
    ) {
      return null;
    }
    const after = { ...byName, oidcSubject: subject };
    await this.opts.store.updateUser(after);
    await this.opts.audit.record({
      actor: `user:${byName.name}`,
      action: 'user.sso-bound',
      target: `user:${byName.userId}`,
      before: publicUser(byName),
      after: publicUser(after),
      reason: 'first single sign-on',
    });
    return after;
  }
}
