/** The care plan's API shapes the pages read (gateway/src/care/model.ts, matching.ts). */
import { api } from '../api.js';

export interface Area {
  areaId: string;
  name: string;
}
export interface Client {
  clientRef: string;
  areaId: string;
  teamId: string | null;
  providerId: string;
  careContactStaffRef: string | null;
  palliative: boolean;
  activeFrom: string;
  activeTo: string | null;
}
export interface Registry {
  areas: Area[];
  clients: Client[];
  teams: { teamId: string; name: string }[];
  providers: { providerId: string; name: string }[];
}
export interface PlanMatch {
  plannedVisitId: string;
  clientRef: string;
  areaId: string;
  startMs: number;
  localDate: string;
  status: string;
  lateMinutes: number | null;
  reasonCode: string | null;
  staffCount: number;
  executedKeys: string[];
}
export interface PlanAlert {
  plannedVisitId: string;
  clientRef: string;
  areaId: string;
  kind: string;
  raisedAtMs: number;
  clearedAtMs: number | null;
  reasonCode: string | null;
}

export const REASON_CODES = ['client-cancelled', 'client-in-hospital', 'staff-ill', 'other'] as const;

export const registry = (): Promise<Registry> => api<Registry>('GET', '/api/plan/registry');

export async function matches(from: string, to: string, area: string): Promise<PlanMatch[]> {
  const q = new URLSearchParams({ from, to });
  if (area) q.set('area', area);
  const r = await api<{ matches: PlanMatch[] }>('GET', `/api/plan/matches?${q.toString()}`);
  return [...r.matches].sort((a, b) => a.startMs - b.startMs || a.clientRef.localeCompare(b.clientRef));
}

export async function alerts(state: 'open' | 'all', area: string): Promise<PlanAlert[]> {
  const q = new URLSearchParams({ state });
  if (area) q.set('area', area);
  return (await api<{ alerts: PlanAlert[] }>('GET', `/api/plan/alerts?${q.toString()}`)).alerts;
}
