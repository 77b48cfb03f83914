import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  CommandKind,
  SCHEMA_VERSION,
  summarizeIssues,
  type Clock,
  type Command,
} from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';

const CommandBody = z
  .object({
    kind: CommandKind,
    ttlSeconds: z.number().int().min(5).max(86_400).optional(),
  })
  .strict();

export interface CommandRoutesDeps {
  clock: Clock;
  readerExists: (readerId: string) => boolean;
  send: (readerId: string, cmd: Command) => Promise<void>;
}

/**
 * `POST /api/readers/:readerId/commands` `{ kind: "identify" | "restart" | "resync-clock" | "selftest-echo" }`:
 * publishes a command with a fresh id; the device's result shows in `GET /api/readers/:readerId`
 * (`lastCommandResult`).
 */
export function commandRoutes(d: CommandRoutesDeps): AdminRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/readers/:readerId/commands',
      handler: async (req): Promise<AdminResponse> => {
        const readerId = req.params.readerId ?? '';
        if (!d.readerExists(readerId)) return { status: 404, body: { error: 'unknown reader' } };
        const p = CommandBody.safeParse(req.body);
        if (!p.success) return { status: 400, body: { error: summarizeIssues(p.error.issues) } };
        const now = d.clock.now();
        const cmd: Command = {
          schemaVersion: SCHEMA_VERSION,
          readerId,
          commandId: `cmd-${randomBytes(8).toString('hex')}`,
          kind: p.data.kind,
          issuedAt: now,
          expiresAt: now + (p.data.ttlSeconds ?? 300) * 1000,
          serverTimeMs: now,
        };
        try {
          await d.send(readerId, cmd);
        } catch (err) {
          return { status: 503, body: { error: `command not sent: ${(err as Error).message}` } };
        }
        return { status: 202, body: { commandId: cmd.commandId, kind: cmd.kind, expiresAt: cmd.expiresAt } };
      },
    },
  ];
}
