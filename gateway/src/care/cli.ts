/** `visittag-gateway plan …`: plan import and registries on the gateway's database. */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadSubcommandSettings, parseSubcommand, type OpenGateway } from '../cli-gateway.js';
import { decodeCsvBytes } from './csv.js';
import { LocalDate, Ref } from './model.js';
import { RegistryBatchSchema } from './service.js';
import { EXIT } from '../../../runtime/cli.js';

type Out = (line: string) => void;

export const PLAN_HELP = `visittag-gateway plan import FILE --area AREA --from YYYY-MM-DD --to YYYY-MM-DD [--dry-run] [--config FILE]
visittag-gateway plan registry FILE.json [--config FILE]
visittag-gateway plan alerts [--all] [--config FILE]

import: FILE is the plan CSV as the planning system or Excel exports it (; , or tab; UTF-8 with or
without BOM, or Windows-1252; decimal comma; dates YYYY-MM-DD with HH:MM, or "YYYY-MM-DD HH:MM").
It replaces the plan of AREA from --from to --to (inclusive) in one step; the earlier version is kept.
Every bad row is listed with its line and reason and then NOTHING is imported. --dry-run checks only.
Exit 0 when imported (or the dry run found no error), 1 when rows were bad, 2 on usage errors.
registry: FILE is JSON {providers, areas, teams, clients, staff, serviceCodes} (each optional); rows are
added or replaced by id. Formats: docs/plan.md.`;

export async function planCommand(
  argv: string[],
  out: Out,
  err: Out,
  withGateway: OpenGateway,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      area: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'dry-run': { type: 'boolean' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    PLAN_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [sub, file] = positionals;
  if ((sub !== 'import' && sub !== 'registry' && sub !== 'alerts') || (sub !== 'alerts' && !file)) {
    err(PLAN_HELP);
    return EXIT.usage;
  }
  if (sub === 'import') {
    const problems: string[] = [];
    if (!values.area || !Ref.safeParse(values.area).success)
      problems.push('--area AREA is required (an area id)');
    if (!values.from || !LocalDate.safeParse(values.from).success)
      problems.push('--from YYYY-MM-DD is required');
    if (!values.to || !LocalDate.safeParse(values.to).success) problems.push('--to YYYY-MM-DD is required');
    if (!problems.length && values.to! < values.from!) problems.push('--to is before --from');
    if (problems.length) {
      err(problems.join('\n'));
      return EXIT.usage;
    }
  }
  const loaded = loadSubcommandSettings(values.config, err);
  if (typeof loaded === 'number') return loaded;
  let bytes: Buffer | null = null;
  if (file) {
    try {
      bytes = readFileSync(file);
    } catch (e) {
      err(`cannot read ${file}: ${(e as Error).message}`);
      return EXIT.noInput;
    }
  }
  return withGateway(loaded.config, async (gw) => {
    const plan = gw.care.plan;
    if (sub === 'alerts') {
      const alerts = await plan.store.alerts({ open: !values.all });
      for (const a of alerts) {
        out(
          [
            a.plannedVisitId,
            a.kind,
            a.areaId,
            a.clientRef,
            new Date(a.raisedAtMs).toISOString(),
            a.clearedBy ?? 'open',
          ].join('\t'),
        );
      }
      if (!alerts.length) out('(no alerts)');
      return 0;
    }
    if (sub === 'registry') {
      let body: unknown;
      try {
        body = JSON.parse(decodeCsvBytes(bytes!).text);
      } catch (e) {
        err(`${file} is not JSON: ${(e as Error).message}`);
        return 1;
      }
      const p = RegistryBatchSchema.safeParse(body);
      if (!p.success) {
        for (const i of p.error.issues.slice(0, 20)) err(`${i.path.join('.') || '(root)'}: ${i.message}`);
        return 1;
      }
      await plan.upsertRegistry(p.data);
      out(
        `registry updated: ${Object.entries(p.data)
          .map(([k, v]) => `${(v as unknown[]).length} ${k}`)
          .join(', ')}`,
      );
      return 0;
    }
    const { text, encoding } = decodeCsvBytes(bytes!);
    const r = await plan.importPlan({
      areaId: values.area!,
      fromDate: values.from!,
      toDate: values.to!,
      dryRun: values['dry-run'] === true,
      actor: 'cli',
      source: basename(file!),
      csvText: text,
    });
    for (const e of r.errors) err(`line ${e.line}: ${e.reason}`);
    if (!r.ok) {
      err(`${r.errors.length} bad row(s): nothing imported (${encoding})`);
      return 1;
    }
    out(
      r.dryRun
        ? `dry run: ${r.rows} planned visits for ${r.areaId} ${r.fromDate}..${r.toDate} are valid (${encoding}); nothing written`
        : `imported ${r.rows} planned visits for ${r.areaId} ${r.fromDate}..${r.toDate} as plan version ${r.planVersionId} (replaced ${r.replaced}; ${r.clientsRematched} clients re-matched; ${encoding})`,
    );
    return 0;
  });
}
