import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pino from 'pino';
import type { AdminRequest, AdminResponse, AdminRoute } from './types.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  token: string;
  logger: pino.Logger;
  routes: AdminRoute[];
  /** Paths served without the token (health probes). */
  publicPaths?: string[];
}

const MAX_BODY = 1024 * 1024;

interface Compiled {
  route: AdminRoute;
  parts: string[];
}

function match(c: Compiled, method: string, parts: string[]): Record<string, string> | null {
  if (c.route.method !== method || c.parts.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const want = c.parts[i] as string;
    const got = parts[i] as string;
    if (want.startsWith(':')) {
      let value: string;
      try {
        value = decodeURIComponent(got);
      } catch {
        return null;
      }
      params[want.slice(1)] = value;
    } else if (want !== got) return null;
  }
  return params;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Token-protected admin HTTP API (node:http). Modules contribute routes; errors never escape. */
export class AdminServer {
  private server: Server | null = null;
  private readonly compiled: Compiled[];
  private readonly tokenDigest: Buffer;
  private readonly log: pino.Logger;
  port: number | null = null;

  constructor(private readonly opts: AdminServerOptions) {
    this.compiled = opts.routes.map((route) => ({ route, parts: route.path.split('/').filter(Boolean) }));
    this.tokenDigest = digest(opts.token);
    this.log = opts.logger.child({ module: 'admin' });
  }

  get url(): string {
    const host = this.opts.host === '0.0.0.0' || this.opts.host === '::' ? '127.0.0.1' : this.opts.host;
    return `http://${host}:${this.port ?? 0}`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.serve(req, res).catch((err: unknown) => {
        this.log.error({ err }, 'admin handler failed');
        if (!res.headersSent) send(res, { status: 500, body: { error: 'internal error' } });
      });
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.log.info({ url: this.url }, 'admin API listening');
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    if (!h?.startsWith('Bearer ')) return false;
    return timingSafeEqual(digest(h.slice(7).trim()), this.tokenDigest);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const method = req.method ?? 'GET';
    if (!['GET', 'POST', 'PUT', 'DELETE'].includes(method)) {
      return send(res, { status: 405, body: { error: 'method not allowed' } });
    }
    const isPublic = (this.opts.publicPaths ?? []).includes(url.pathname);
    if (!isPublic && !this.authorized(req)) {
      res.setHeader('www-authenticate', 'Bearer');
      return send(res, { status: 401, body: { error: 'missing or wrong bearer token' } });
    }
    const parts = url.pathname.split('/').filter(Boolean);
    let found: { route: AdminRoute; params: Record<string, string> } | null = null;
    for (const c of this.compiled) {
      const params = match(c, method, parts);
      if (params) {
        found = { route: c.route, params };
        break;
      }
    }
    if (!found) return send(res, { status: 404, body: { error: 'not found' } });
    let body: unknown;
    if (method === 'POST' || method === 'PUT') {
      const raw = await readBody(req);
      if (raw === null) return send(res, { status: 413, body: { error: 'body too large' } });
      if (raw.length) {
        try {
          body = JSON.parse(raw) as unknown;
        } catch {
          return send(res, { status: 400, body: { error: 'body is not JSON' } });
        }
      }
    }
    const request: AdminRequest = {
      method: method as AdminRequest['method'],
      params: found.params,
      query: url.searchParams,
      body,
      actor: isPublic ? 'anonymous' : 'admin-token',
      ...(req.socket.remoteAddress ? { remoteAddress: req.socket.remoteAddress } : {}),
      ...(req.headers.host ? { host: req.headers.host } : {}),
    };
    send(res, await found.route.handler(request));
  }
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, r: AdminResponse): void {
  const type = r.contentType ?? 'application/json';
  const text = type.startsWith('application/json') ? JSON.stringify(r.body, null, 2) : String(r.body);
  res.writeHead(r.status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}
