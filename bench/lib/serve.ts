/** Child side of the bench IPC: register command handlers, then tell the parent we are ready. */
type Handler = (args: never) => unknown;

export function serve(handlers: Record<string, Handler>): void {
  if (!process.send) throw new Error('bench workers must be started with an IPC channel');
  const send = (m: unknown) => process.send?.(m);
  process.on('message', (m: { id: number; cmd: string; args: unknown }) => {
    const h = handlers[m.cmd];
    if (!h) {
      send({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => h(m.args as never))
      .then(
        (result) => send({ id: m.id, ok: true, result }),
        (err: unknown) =>
          send({
            id: m.id,
            ok: false,
            error: err instanceof Error ? (err.stack ?? err.message) : String(err),
          }),
      );
  });
  handlers.exit ??= () => {
    setTimeout(() => process.exit(0), 20);
    return true;
  };
  // The parent dies → we die (no orphans holding sockets).
  process.on('disconnect', () => process.exit(0));
  send({ event: 'ready' });
}

export function emit(event: string, data: unknown): void {
  process.send?.({ event, data });
}
