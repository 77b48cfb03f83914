import type { NewAuditEntry } from '../audit/store.js';
import type { EraseRequest, EraseResult, LocalErasure } from '../store/retention.js';
import type { RetentionSettings } from './policy.js';

export interface ErasureInput extends EraseRequest {
  actor: string;
  reason: string;
}

/**
 * Erasure with its audit entry (action `erasure.client` / `erasure.staff`). The entry names the pseudonym, the
 * tables changed and whether records-law retention was overridden, never the erased reference itself.
 */
export function eraseAudited(
  store: Pick<LocalErasure, 'erase'>,
  settings: RetentionSettings,
  appendAudit: (e: NewAuditEntry) => unknown,
  req: ErasureInput,
): EraseResult {
  const r = store.erase(req, settings.visitsDays);
  if (r.ok) {
    appendAudit({
      atMs: req.nowMs,
      actor: req.actor,
      action: `erasure.${req.kind}`,
      target: r.pseudonym,
      before: null,
      after: { changed: r.changed, cards: r.cards, forcedRecordsLaw: req.force },
      reason: req.reason,
    });
  }
  return r;
}
