import { z } from 'zod';
import {
  PROVISION_PATH,
  ProvisionRequest,
  SafeId,
  SCHEMA_VERSION,
  summarizeIssues,
} from '../../../protocol/index.js';
import type { AdminResponse, AdminRoute } from '../admin/types.js';
import type { Enrollment } from './enrollment.js';

const IssueBody = z
  .object({
    clientRef: SafeId.nullable(),
    label: z.string().max(200).optional(),
    readerId: SafeId.optional(),
    ttlMinutes: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 60)
      .optional(),
  })
  .strict();

/** Public paths (no bearer token) this module adds to the admin server. */
export const ENROLLMENT_PUBLIC_PATHS = [PROVISION_PATH];

export function enrollmentRoutes(enrollment: Enrollment): AdminRoute[] {
  return [
    {
      method: 'POST',
      path: '/api/enrollments',
      handler: async (req): Promise<AdminResponse> => {
        const p = IssueBody.safeParse(req.body);
        if (!p.success) return { status: 400, body: { error: summarizeIssues(p.error.issues) } };
        try {
          const issued = await enrollment.issue({
            clientRef: p.data.clientRef,
            ...(p.data.label !== undefined ? { label: p.data.label } : {}),
            ...(p.data.readerId !== undefined ? { readerId: p.data.readerId } : {}),
            ...(p.data.ttlMinutes !== undefined ? { ttlMs: p.data.ttlMinutes * 60_000 } : {}),
          });
          return { status: 201, body: issued };
        } catch (err) {
          return { status: 400, body: { error: (err as Error).message } };
        }
      },
    },
    {
      method: 'GET',
      path: '/api/enrollments',
      handler: async (): Promise<AdminResponse> => ({
        status: 200,
        body: { enrollments: await enrollment.list() },
      }),
    },
    {
      method: 'POST',
      path: PROVISION_PATH,
      handler: async (req): Promise<AdminResponse> => {
        const p = ProvisionRequest.safeParse(req.body);
        if (!p.success) {
          return {
            status: 400,
            body: {
              schemaVersion: SCHEMA_VERSION,
              error: 'bad-request',
              message: summarizeIssues(p.error.issues).slice(0, 400),
              fix: 'update the device software; the request was not understood',
            },
          };
        }
        const r = await enrollment.exchange({
          code: p.data.code,
          source: req.remoteAddress ?? 'unknown',
          ...(p.data.preview ? { preview: true } : {}),
          ...(req.host ? { host: req.host } : {}),
          ...(p.data.hostname ? { hostname: p.data.hostname } : {}),
          ...(p.data.cardSchemes ? { cardSchemes: p.data.cardSchemes } : {}),
        });
        return { status: r.status, body: r.body };
      },
    },
  ];
}
