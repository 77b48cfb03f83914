import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePlanCsv, parsePlanJson, PlanImportRequest } from '../../gateway/src/care/import.js';
import { RegistryBatchSchema } from '../../gateway/src/care/service.js';

const DOC = readFileSync(resolve(import.meta.dirname, '../../docs/plan.md'), 'utf8');
const block = (name: string): string => {
  const m = new RegExp('```\\w+ ' + name + '\\n([\\s\\S]*?)\\n```').exec(DOC);
  if (!m) throw new Error(`docs/plan.md has no block named ${name}`);
  return m[1]!;
};
const ctx = { areaId: 'north', fromDate: '2026-03-29', toDate: '2026-03-29', timeZone: 'Europe/Stockholm' };

describe('docs/plan.md examples', () => {
  it('the registry example is valid', () => {
    expect(RegistryBatchSchema.safeParse(JSON.parse(block('registry'))).success).toBe(true);
  });
  it('the CSV examples import without errors', () => {
    expect(parsePlanCsv(block('plan-semicolon'), ctx)).toMatchObject({ errors: [], visits: { length: 3 } });
    expect(parsePlanCsv(block('plan-comma'), ctx)).toMatchObject({ errors: [], visits: { length: 2 } });
  });
  it('the bad CSV example gives exactly the documented answer', () => {
    const r = parsePlanCsv(block('plan-bad'), ctx);
    expect(r.errors.map((e) => `line ${e.line}: ${e.reason}`).join('\n')).toBe(block('plan-bad-answer'));
  });
  it('the JSON API example is valid', () => {
    const req = PlanImportRequest.parse(JSON.parse(block('plan-json')));
    expect(parsePlanJson(req.visits, ctx)).toMatchObject({ errors: [], visits: { length: 2 } });
  });
});
