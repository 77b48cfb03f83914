/** Admin HTTP API route shape: modules export routes, the admin server mounts them behind authentication. */
import type { ZodType } from 'zod';

/** Who is calling, as established by the admin server (bearer token, API token or session). */
export interface Principal {
  /** How the caller proved who it is. */
  kind: 'anonymous' | 'bearer' | 'api-token' | 'session';
  /** Recorded in audit trails: 'admin-token', 'user:<name>', 'token:<name>'. */
  actor: string;
  /** Role name (see gateway/src/auth/roles.ts); 'admin' for the configured bearer token. */
  role: string;
  /** Areas a scoped role may see; empty for roles that are not scoped by area. */
  areas: readonly string[];
  /** Care provider a coordinator belongs to, when scoped. */
  provider?: string;
  /** User id behind a session or API token. */
  userId?: string;
  /** The staff member a care-staff account is bound to (their own registrations). */
  staffRef?: string;
}

export interface AdminRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path parameters from `:name` segments. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body (POST/PUT), or undefined. Validate with zod before use. */
  body: unknown;
  /** Who is calling (from the token's or user's name); recorded in audit trails. */
  actor: string;
  /** The authenticated caller with role and scope (absent only in hand-built test requests). */
  principal?: Principal;
  /** Peer address of the HTTP connection (rate limits on public paths). */
  remoteAddress?: string;
  /** The request's Host header (e.g. to tell a device which host name reaches this gateway). */
  host?: string;
  /** Request headers, lower-case names (cookies, user agent); absent in hand-built test requests. */
  headers?: Record<string, string | undefined>;
}

export interface AdminResponse {
  status: number;
  /** JSON value, text, a Buffer, or a node Readable (streamed as produced, e.g. Server-Sent Events). */
  body: unknown;
  /** Defaults to application/json; `/metrics` uses text/plain. */
  contentType?: string;
  /** Extra response headers (e.g. set-cookie, content-disposition). */
  headers?: Record<string, string | string[]>;
}

/** Optional zod schemas: validated by the server (400 naming the field) and published in the OpenAPI document. */
export interface AdminRouteSchema {
  summary?: string;
  tags?: string[];
  params?: ZodType;
  querystring?: ZodType;
  body?: ZodType;
  response?: Record<number, ZodType>;
}

export interface AdminRoute {
  method: AdminRequest['method'];
  /** e.g. '/api/visits/:visitId/close' */
  path: string;
  handler: (req: AdminRequest) => AdminResponse | Promise<AdminResponse>;
  schema?: AdminRouteSchema;
  /**
   * The handler itself limits what it answers to the caller's areas and provider (gateway/src/auth/scope.ts):
   * only such routes are open to area-scoped roles (coordinator, unit manager, care staff); the route
   * policy drops those roles from every other route, whatever it lists.
   */
  scoped?: true;
}
