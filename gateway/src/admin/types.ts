/** Admin HTTP API route shape: modules export routes, the admin server mounts them behind the token. */
export interface AdminRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path parameters from `:name` segments. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body (POST/PUT), or undefined. Validate with zod before use. */
  body: unknown;
  /** Who is calling (from the token's name); recorded in audit trails. */
  actor: string;
  /** Peer address of the HTTP connection (rate limits on public paths). */
  remoteAddress?: string;
  /** The request's Host header (e.g. to tell a device which host name reaches this gateway). */
  host?: string;
}

export interface AdminResponse {
  status: number;
  body: unknown;
  /** Defaults to application/json; `/metrics` uses text/plain. */
  contentType?: string;
}

export interface AdminRoute {
  method: AdminRequest['method'];
  /** e.g. '/api/visits/:visitId/close' */
  path: string;
  handler: (req: AdminRequest) => AdminResponse | Promise<AdminResponse>;
}
