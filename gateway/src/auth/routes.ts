import { z } from 'zod';
import type { AdminRequest, AdminResponse, AdminRoute } from '../admin/types.js';
import type { OidcLogin } from './oidc.js';
import {
  AuthError,
  type AuthService,
  NewToken,
  NewUser,
  parseCookies,
  publicUser,
  SESSION_COOKIE,
  UserPatch,
} from './service.js';

export const LOGIN_PATH = '/api/auth/login';
export const OIDC_START_PATH = '/api/auth/oidc/start';
export const OIDC_CALLBACK_PATH = '/api/auth/oidc/callback';
/** Reached without a session (they create one). */
export const AUTH_PUBLIC_PATHS = [LOGIN_PATH, OIDC_START_PATH, OIDC_CALLBACK_PATH];
const OIDC_STATE_COOKIE = 'vt_oidc_state';

const Login = z.object({ name: z.string().min(1).max(64), password: z.string().min(1).max(256) }).strict();
const Reason = z.object({ reason: z.string().max(500).optional() }).strict();

function fail(err: unknown): AdminResponse {
  if (err instanceof AuthError) return { status: err.statusCode, body: { error: err.message } };
  if (err instanceof z.ZodError) {
    return {
      status: 400,
      body: {
        error: 'invalid request',
        issues: err.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      },
    };
  }
  throw err;
}

const redirect = (location: string, cookies: string[] = []): AdminResponse => ({
  status: 302,
  body: '',
  contentType: 'text/plain; charset=utf-8',
  headers: { location, ...(cookies.length ? { 'set-cookie': cookies } : {}) },
});

async function me(auth: AuthService, req: AdminRequest): Promise<AdminResponse> {
  const p = req.principal;
  if (!p || p.kind === 'anonymous') return { status: 401, body: { error: 'not logged in' } };
  if (p.kind !== 'session') {
    return { status: 200, body: { actor: p.actor, role: p.role, areas: p.areas, kind: p.kind } };
  }
  const cookie = parseCookies(req.headers?.cookie)[SESSION_COOKIE] ?? '';
  const found = await auth.session(cookie);
  if (!found) return { status: 401, body: { error: 'session ended: log in again' } };
  return { status: 200, body: { kind: p.kind, user: publicUser(found.user), csrf: found.session.csrf } };
}

/** Login/logout/me, users and API tokens (admin), and OIDC single sign-on when configured. */
export function authRoutes(auth: AuthService, oidc?: OidcLogin | null): AdminRoute[] {
  const routes: AdminRoute[] = [
    {
      method: 'POST',
      path: LOGIN_PATH,
      schema: {
        summary: 'Log in with a local account; sets the session cookie',
        tags: ['auth'],
        body: Login,
      },
      handler: async (req) => {
        try {
          const v = Login.parse(req.body);
          const s = await auth.login(v.name, v.password);
          return {
            status: 200,
            body: { user: publicUser(s.user), csrf: s.csrf },
            headers: { 'set-cookie': auth.cookieHeader(s.cookie) },
          };
        } catch (err) {
          return fail(err);
        }
      },
    },
    {
      method: 'POST',
      path: '/api/auth/logout',
      schema: { summary: 'End this session', tags: ['auth'] },
      handler: async (req) => {
        const cookie = parseCookies(req.headers?.cookie)[SESSION_COOKIE];
        if (cookie) await auth.logout(cookie);
        return { status: 200, body: { ok: true }, headers: { 'set-cookie': auth.cookieHeader('', 0) } };
      },
    },
    {
      method: 'GET',
      path: '/api/auth/me',
      schema: { summary: 'Who is logged in, with the CSRF token for unsafe requests', tags: ['auth'] },
      handler: (req) => me(auth, req),
    },
    {
      method: 'GET',
      path: '/api/users',
      schema: { summary: 'Accounts (admin)', tags: ['users'] },
      handler: async () => ({ status: 200, body: { users: await auth.listUsers() } }),
    },
    {
      method: 'POST',
      path: '/api/users',
      schema: { summary: 'Create an account (admin)', tags: ['users'], body: NewUser },
      handler: async (req) => {
        try {
          return {
            status: 201,
            body: { user: publicUser(await auth.createUser(req.actor, NewUser.parse(req.body))) },
          };
        } catch (err) {
          return fail(err);
        }
      },
    },
    {
      method: 'PUT',
      path: '/api/users/:userId',
      schema: {
        summary: 'Change role, areas, password or disable (admin); a reason is required',
        tags: ['users'],
        body: UserPatch,
      },
      handler: async (req) => {
        try {
          const u = await auth.updateUser(req.actor, req.params.userId ?? '', UserPatch.parse(req.body));
          return { status: 200, body: { user: publicUser(u) } };
        } catch (err) {
          return fail(err);
        }
      },
    },
    {
      method: 'GET',
      path: '/api/tokens',
      schema: { summary: 'API tokens (admin; secrets are never shown again)', tags: ['users'] },
      handler: async () => ({ status: 200, body: { tokens: await auth.listTokens() } }),
    },
    {
      method: 'POST',
      path: '/api/tokens',
      schema: {
        summary: 'Create a scoped API token (admin); the secret is shown once',
        tags: ['users'],
        body: NewToken,
      },
      handler: async (req) => {
        try {
          return { status: 201, body: await auth.createToken(req.actor, NewToken.parse(req.body)) };
        } catch (err) {
          return fail(err);
        }
      },
    },
    {
      method: 'DELETE',
      path: '/api/tokens/:tokenId',
      schema: { summary: 'Revoke an API token (admin)', tags: ['users'] },
      handler: async (req) => {
        const r = Reason.safeParse(req.body ?? {});
        const ok = await auth.revokeToken(
          req.actor,
          req.params.tokenId ?? '',
          r.success ? (r.data.reason ?? null) : null,
        );
        return ok ? { status: 200, body: { ok: true } } : { status: 404, body: { error: 'no such token' } };
      },
    },
  ];
  if (!oidc) return routes;
  return [
    ...routes,
    {
      method: 'GET',
      path: OIDC_START_PATH,
      schema: { summary: 'Start single sign-on (redirects to the identity provider)', tags: ['auth'] },
      handler: async () => {
        const s = await oidc.start();
        const cookie = `${OIDC_STATE_COOKIE}=${s.state}; Path=/api/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=600`;
        return redirect(s.url, [cookie]);
      },
    },
    {
      method: 'GET',
      path: OIDC_CALLBACK_PATH,
      schema: { summary: 'Single sign-on callback (creates the session)', tags: ['auth'] },
      handler: async (req) => {
        const clear = `${OIDC_STATE_COOKIE}=; Path=/api/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0`;
        let who: { subject: string; name?: string };
        try {
          who = await oidc.finish(req.query, parseCookies(req.headers?.cookie)[OIDC_STATE_COOKIE]);
        } catch {
          return redirect('/#/login?error=sso', [clear]);
        }
        const user = await auth.userForOidc(who.subject, who.name);
        if (!user) return redirect('/#/login?error=sso-no-account', [clear]);
        const s = await auth.newSession(user);
        return redirect('/', [clear, auth.cookieHeader(s.cookie)]);
      },
    },
  ];
}
