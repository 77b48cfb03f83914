import { z } from 'zod';

/** Single sign-on settings (gateway config `admin.oidc`); kept apart from oidc.ts so reading the config loads no OIDC client. */
export const OidcSettings = z
  .object({
    issuer: z
      .string()
      .url()
      .describe('The identity provider (e.g. the municipality’s), discovery at /.well-known'),
    clientId: z.string().min(1),
    clientSecret: z.string().min(1),
    /** Where the provider sends the browser back: <gateway URL>/api/auth/oidc/callback. */
    redirectUri: z.string().url(),
    /** Only for a provider on loopback in tests or a lab: allow http:// (never in production). */
    allowHttp: z.boolean().default(false),
  })
  .strict();
export type OidcSettings = z.infer<typeof OidcSettings>;
