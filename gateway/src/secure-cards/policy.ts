/**
 * What the gateway does with a tap that is not proven secure (issue 18), per fleet with overrides per
 * client:
 * - `uidOnly`: a card that gives only its UID: `accept`, `flag` (accepted, marked uid-only for
 *   reports and coordinators), or `refuse` (the tap never becomes a visit);
 * - `clone`: a UID-only tap of a card known to be secure (it gave a valid SUN message before), which is
 *   what a copied UID looks like: `flag` or `refuse`.
 * A tap with a SUN message that does not verify, or that is replayed, is always refused.
 */
import { z } from 'zod';

export const UidOnlyMode = z.enum(['accept', 'flag', 'refuse']);
export const CloneMode = z.enum(['flag', 'refuse']);

const Rule = z.object({ uidOnly: UidOnlyMode.optional(), clone: CloneMode.optional() }).strict();

export const SecureCardPolicy = z
  .object({
    uidOnly: UidOnlyMode.default('accept').describe('UID-only cards, fleet-wide default.'),
    clone: CloneMode.default('refuse').describe('UID-only taps of a card known to be secure.'),
    clients: z
      .record(z.string().min(1).max(64), Rule)
      .default({})
      .describe('Overrides per client reference (the client the reader is placed with).'),
  })
  .strict();
export type SecureCardPolicy = z.infer<typeof SecureCardPolicy>;

export interface ResolvedRule {
  uidOnly: z.infer<typeof UidOnlyMode>;
  clone: z.infer<typeof CloneMode>;
}

export function ruleFor(policy: SecureCardPolicy, clientRef: string | null): ResolvedRule {
  const o = clientRef ? policy.clients[clientRef] : undefined;
  return { uidOnly: o?.uidOnly ?? policy.uidOnly, clone: o?.clone ?? policy.clone };
}

/** What a reader can enforce itself (it holds no key): refusing UID-only cards where the policy does. */
export function readerUidOnly(policy: SecureCardPolicy, clientRef: string | null): 'accept' | 'refuse' {
  return ruleFor(policy, clientRef).uidOnly === 'refuse' ? 'refuse' : 'accept';
}
