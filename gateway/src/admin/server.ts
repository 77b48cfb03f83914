import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type pino from 'pino';
import type { AdminRequest, AdminResponse, AdminRoute, Principal } from './types.js';

/** Decides who is calling; null when the request carries no valid credential. */
export type Authenticate = (req: {
  headers: Record<string, string | string[] | undefined>;
  method: string;
  path: string;
}) => Principal | null | Promise<Principal | null>;

/** Decides whether a principal may call a route; answers 403 when false. */
export type Authorize = (
  route: { method: string; path: string; scoped?: boolean },
  principal: Principal,
) => boolean;

/** A change made through the API, as the audit log receives it. */
export interface AdminChange {
  principal: Principal;
  method: string;
  /** The route as mounted, e.g. '/api/visits/:visitId/close'. */
  route: string;
  params: Record<string, string>;
  body: unknown;
  status: number;
  response: unknown;
}

export interface AdminServerOptions {
  host: string;
  port: number;
  /** The configured bearer token: always accepted, as the admin role (automation). */
  token: string;
  logger: pino.Logger;
  routes: AdminRoute[];
  /** Paths served without credentials (health probes, enrollment exchange, login). */
  publicPaths?: string[];
  /** Accounts, sessions and API tokens (gateway/src/auth); the bearer token is checked first either way. */
  authenticate?: Authenticate;
  /** Role check per route; without it every authenticated caller may call every route. */
  authorize?: Authorize;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Largest accepted request body; bigger answers 413. Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Called after every successful (2xx) POST/PUT/DELETE with the caller and the route (the audit log). */
  onChange?: (change: AdminChange) => void | Promise<void>;
  /** Requests per window per client address; beyond answers 429. Default 60,000 per minute (1,000/s: a flood guard that test polling loops and local tools stay under). */
  rateLimit?: { max: number; windowMs: number };
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE']);
export const OPENAPI_PATH = '/api/openapi.json';

const digest = (s: string) => createHash('sha256').update(s).digest();

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** The admin HTTP API on Fastify: modules contribute AdminRoutes; auth, limits and headers live here. */
export class AdminServer {
  private app: FastifyInstance | null = null;
  private readonly tokenDigest: Buffer;
  private readonly log: pino.Logger;
  private readonly publicPaths: Set<string>;
  /** 'METHOD path' of routes whose handler applies the caller's area scope (AdminRoute.scoped). */
  private readonly scoped: Set<string>;
  port: number | null = null;

  constructor(private readonly opts: AdminServerOptions) {
    this.tokenDigest = digest(opts.token);
    this.log = opts.logger.child({ module: 'admin' });
    this.publicPaths = new Set([...(opts.publicPaths ?? []), OPENAPI_PATH]);
    this.scoped = new Set(opts.routes.filter((r) => r.scoped).map((r) => `${r.method} ${r.path}`));
  }

  get url(): string {
    const host = this.opts.host === '0.0.0.0' || this.opts.host === '::' ? '127.0.0.1' : this.opts.host;
    return `${this.opts.tls ? 'https' : 'http'}://${host}:${this.port ?? 0}`;
  }

  /** Every mounted route with whether it is public (for the security test and docs). */
  mountedRoutes(): { method: string; path: string; public: boolean; scoped: boolean }[] {
    return this.opts.routes.map((r) => ({
      method: r.method,
      path: r.path,
      public: this.publicPaths.has(r.path),
      scoped: r.scoped === true,
    }));
  }

  async start(): Promise<void> {
    const app = await this.build();
    this.app = app;
    await app.listen({ port: this.opts.port, host: this.opts.host });
    this.port = (app.server.address() as AddressInfo).port;
    this.log.info({ url: this.url }, 'admin API listening');
  }

  async stop(): Promise<void> {
    const app = this.app;
    this.app = null;
    if (!app) return;
    app.server.closeAllConnections();
    await app.close();
  }

  /** The Fastify instance with every route registered, not listening (tests may `inject`). */
  async build(): Promise<FastifyInstance> {
    const app = Fastify({
      bodyLimit: this.opts.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
      exposeHeadRoutes: false,
      ...(this.opts.tls ? { https: { cert: this.opts.tls.cert, key: this.opts.tls.key } } : {}),
    }) as unknown as FastifyInstance;
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    this.installParsers(app);
    app.setErrorHandler((err: FastifyError, _req, reply) => this.onError(err, reply));
    app.setNotFoundHandler((_req, reply) => {
      void reply.code(404).header('cache-control', 'no-store').send({ error: 'not found' });
    });
    await app.register(helmet, {
      hsts: this.opts.tls ? { maxAge: 15552000 } : false,
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          frameAncestors: ["'none'"],
          formAction: ["'self'"],
          upgradeInsecureRequests: null,
        },
      },
    });
    const limit = this.opts.rateLimit ?? { max: 60_000, windowMs: 60_000 };
    await app.register(rateLimit, {
      max: limit.max,
      timeWindow: limit.windowMs,
      errorResponseBuilder: (_req, ctx) =>
        Object.assign(
          new Error(`too many requests: at most ${ctx.max} per minute window; wait ${ctx.after} and retry`),
          {
            statusCode: 429,
          },
        ),
    });
    await app.register(swagger, {
      openapi: {
        info: { title: 'visittag gateway admin API', version: '1' },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer' },
            session: { type: 'apiKey', in: 'cookie', name: 'vt_session' },
          },
        },
        security: [{ bearer: [] }, { session: [] }],
      },
      transform: jsonSchemaTransform,
    });
    app.addHook('onRequest', async (req, reply) => this.gate(req, reply));
    for (const route of this.opts.routes) this.mount(app, route);
    app.get(OPENAPI_PATH, { schema: { hide: true } }, async (_req, reply) =>
      reply.header('cache-control', 'no-store').send(app.swagger()),
    );
    await app.ready();
    return app;
  }

  private installParsers(app: FastifyInstance): void {
    app.removeAllContentTypeParsers();
    // Bodies are JSON whatever the content type says (the CLI and curl users send either); empty means none.
    app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
      const text = String(body);
      if (!text.trim()) return done(null, undefined);
      try {
        done(null, JSON.parse(text) as unknown);
      } catch {
        const err = new Error('body is not JSON') as FastifyError;
        err.statusCode = 400;
        done(err, undefined);
      }
    });
  }

  private onError(err: FastifyError, reply: FastifyReply): void {
    void reply.header('cache-control', 'no-store');
    if (err.validation) {
      void reply.code(400).send({
        error: 'invalid request',
        issues: err.validation.map((v) => ({ path: v.instancePath || v.params, message: v.message })),
      });
      return;
    }
    const status = err.statusCode ?? 500;
    if (status === 413) {
      void reply
        .code(413)
        .send({ error: 'body too large: send at most the configured limit (1 MiB default)' });
      return;
    }
    if (status >= 400 && status < 500) {
      void reply.code(status).send({ error: err.message });
      return;
    }
    this.log.error({ err }, 'admin handler failed');
    void reply.code(500).send({ error: 'internal error' });
  }

  /** 405 for other methods, then authentication and the role check; sets req.principal. */
  private async gate(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!METHODS.has(req.method)) {
      return void reply.code(405).header('cache-control', 'no-store').send({ error: 'method not allowed' });
    }
    const path = pathOf(req.url);
    if (this.publicPaths.has(path)) {
      // a stale or CSRF-less session must not block the login page or a health probe
      const who = await this.identify(req, path).catch(() => null);
      req.principal = who ?? { kind: 'anonymous', actor: 'anonymous', role: 'anonymous', areas: [] };
      return;
    }
    const who = await this.identify(req, path);
    if (!who) {
      return void reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .header('cache-control', 'no-store')
        .send({
          error: 'missing or wrong bearer token, API token or session: log in or send Authorization: Bearer',
        });
    }
    req.principal = who;
    const routePath = req.routeOptions.url;
    if (
      routePath &&
      this.opts.authorize &&
      !this.opts.authorize(
        { method: req.method, path: routePath, scoped: this.scoped.has(`${req.method} ${routePath}`) },
        who,
      )
    ) {
      return void reply
        .code(403)
        .header('cache-control', 'no-store')
        .send({ error: `role '${who.role}' may not ${req.method} ${routePath}` });
    }
  }

  private async identify(req: FastifyRequest, path: string): Promise<Principal | null> {
    const h = req.headers.authorization;
    if (h?.startsWith('Bearer ') && timingSafeEqual(digest(h.slice(7).trim()), this.tokenDigest)) {
      return { kind: 'bearer', actor: 'admin-token', role: 'admin', areas: [] };
    }
    if (!this.opts.authenticate) return null;
    return this.opts.authenticate({ headers: req.headers, method: req.method, path });
  }

  private mount(app: FastifyInstance, route: AdminRoute): void {
    const s = route.schema;
    const schema: Record<string, unknown> = {};
    if (s?.summary) schema.summary = s.summary;
    if (s?.tags) schema.tags = s.tags;
    if (s?.params) schema.params = s.params;
    if (s?.querystring) schema.querystring = s.querystring;
    if (s?.body) schema.body = s.body;
    if (s?.response) schema.response = s.response;
    app.route({
      method: route.method,
      url: route.path,
      schema: schema,
      handler: async (req, reply) => {
        const principal = req.principal ?? {
          kind: 'anonymous',
          actor: 'anonymous',
          role: 'anonymous',
          areas: [],
        };
        const request: AdminRequest = {
          method: req.method as AdminRequest['method'],
          params: req.params as Record<string, string>,
          query: new URL(req.url, 'http://admin.invalid').searchParams,
          body: req.body,
          actor: principal.actor,
          principal,
          headers: req.headers as Record<string, string | undefined>,
          ...(req.socket.remoteAddress ? { remoteAddress: req.socket.remoteAddress } : {}),
          ...(req.headers.host ? { host: req.headers.host } : {}),
        };
        const r = await route.handler(request);
        if (route.method !== 'GET' && r.status >= 200 && r.status < 300 && this.opts.onChange) {
          await this.opts.onChange({
            principal,
            method: route.method,
            route: route.path,
            params: request.params,
            body: request.body,
            status: r.status,
            response: r.body,
          });
        }
        return send(reply, r);
      },
    });
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function send(reply: FastifyReply, r: AdminResponse): FastifyReply {
  const type = r.contentType ?? 'application/json';
  if (r.body instanceof Readable) {
    // a stream (Server-Sent Events): sent as it is produced; closing the connection destroys it
    void reply.code(r.status).header('content-type', type).header('cache-control', 'no-store');
    for (const [k, v] of Object.entries(r.headers ?? {})) void reply.header(k, v);
    return reply.send(r.body);
  }
  const text = type.startsWith('application/json') ? JSON.stringify(r.body, null, 2) : r.body;
  void reply.code(r.status).header('content-type', type).header('cache-control', 'no-store');
  for (const [k, v] of Object.entries(r.headers ?? {})) void reply.header(k, v);
  return reply.send(typeof text === 'string' || Buffer.isBuffer(text) ? text : String(text));
}
