/**
 * Loads a care plan for the simulator from a JSON file (the shape of `SimPlan`, e.g. one written by
 * `npm run sim -- --plan gen --save-plan FILE`). Registries are checked with the gateway's own schemas;
 * every problem is named with its fix.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { LocalDate, LocalTime, Ref } from '../../gateway/src/care/model.js';
import { RegistryBatchSchema } from '../../gateway/src/care/service.js';
import type { SimPlan } from './types.js';

const SimPlanSchema = z
  .object({
    seed: z.number().int().min(0),
    timeZone: z.string().min(1),
    fromDate: LocalDate,
    days: z.number().int().min(1).max(60),
    registry: RegistryBatchSchema.required(),
    homes: z.array(z.object({ clientRef: Ref, readerId: Ref, x: z.number(), y: z.number() }).strict()).min(1),
    shifts: z.record(z.string(), z.array(z.enum(['day', 'evening', 'off']))),
    visits: z.array(
      z
        .object({
          plannedVisitId: Ref,
          clientRef: Ref,
          areaId: Ref,
          date: LocalDate,
          start: LocalTime,
          plannedMinutes: z.number().min(0).max(1440),
          staffCount: z.union([z.literal(1), z.literal(2)]),
          staffRefs: z.array(Ref).max(2),
          serviceCodes: z.array(
            z
              .object({
                code: Ref,
                standardMinutes: z.number().nullable(),
                grantedMinutes: z.number().nullable(),
              })
              .strict(),
          ),
        })
        .strict(),
    ),
  })
  .strict();

export function parseSimPlan(text: string, source: string): SimPlan {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(
      `${source}: not JSON (${(err as Error).message}); write a plan with --plan gen --save-plan FILE`,
    );
  }
  const r = SimPlanSchema.safeParse(json);
  if (!r.success) {
    const first = r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || 'plan'}: ${i.message}`)
      .join('; ');
    throw new Error(`${source}: not a simulator plan: ${first} (see simulator/plan/types.ts)`);
  }
  const plan = r.data;
  const clients = new Set(plan.registry.clients.map((c) => c.clientRef));
  const homed = new Set(plan.homes.map((h) => h.clientRef));
  for (const v of plan.visits) {
    if (!clients.has(v.clientRef) || !homed.has(v.clientRef))
      throw new Error(
        `${source}: visit ${v.plannedVisitId} is for ${v.clientRef}, who has no client row or home`,
      );
  }
  for (const s of plan.registry.staff)
    if ((plan.shifts[s.staffRef]?.length ?? 0) < plan.days)
      throw new Error(`${source}: staff ${s.staffRef} needs a shift for each of the ${plan.days} days`);
  return plan;
}

export const loadSimPlan = (path: string): SimPlan => parseSimPlan(readFileSync(path, 'utf8'), path);
