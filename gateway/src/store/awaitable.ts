/**
 * `Awaitable<T>`: what a store port answers (see ./README.md). SQLite answers with the value itself,
 * PostgreSQL with a Promise; code typed against a port handles both. (The same type as `Awaitable` in
 * ./ports.ts, declared here too so ingest-store.ts can use it without an import cycle.)
 */
export type Awaitable<T> = T | Promise<T>;

export const isPromiseLike = <T>(x: Awaitable<T>): x is Promise<T> =>
  typeof (x as { then?: unknown } | null)?.then === 'function';

/**
 * Runs `next` on the answer of a port call: at once when the adapter answered synchronously (SQLite:
 * no microtask, so a synchronous caller such as the ingest group commit stays synchronous), after it
 * resolves otherwise (PostgreSQL). A synchronous throw of `next` propagates; so does a rejection.
 */
export function settle<T, R>(x: Awaitable<T>, next: (value: T) => R): R | Promise<Awaited<R>> {
  if (isPromiseLike(x)) return x.then(next) as Promise<Awaited<R>>;
  return next(x);
}
