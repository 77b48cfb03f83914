/** Calls the gateway API with the session cookie; unsafe methods carry the CSRF token. */
let csrf = '';
export const setCsrf = (v: string): void => {
  csrf = v;
};
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The answer's JSON body (e.g. a plan import's row errors). */
    readonly body?: unknown,
  ) {
    super(message);
  }
}
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const data = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new ApiError(res.status, data.error ?? res.statusText, data);
  return data;
}
