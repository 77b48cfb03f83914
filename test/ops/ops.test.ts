import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ALERT_KINDS } from '../../gateway/src/fleet/alerts.js';

// The operator's files in ops/: Prometheus alert rules checked and unit-tested by promtool (Debian's prometheus
// package, installed by scripts/setup-system.sh), and the Grafana dashboard checked against a schema of
// Grafana's dashboard model. Both may only use metrics the gateway really registers.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const rulesFile = join(root, 'ops', 'prometheus', 'visittag-rules.yml');
const rulesTest = join(root, 'ops', 'prometheus', 'visittag-rules.test.yml');
const dashboardFile = join(root, 'ops', 'grafana', 'visittag-gateway.json');
const tmp = mkdtempSync(join(tmpdir(), 'visittag-ops-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function promtool(args: string[]): { code: number; out: string } {
  if (!existsSync('/usr/bin/promtool')) {
    throw new Error(
      'promtool is missing: run `sudo bash scripts/setup-system.sh` (installs Debian prometheus)',
    );
  }
  const r = spawnSync('/usr/bin/promtool', args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** Every `visittag_*` metric name the gateway registers (string literals in gateway/, tests excluded). */
function gatewayMetricNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/['"`](visittag_[a-z0-9_]+)['"`]/g))
          names.add(m[1]!);
      }
    }
  };
  walk(join(root, 'gateway'));
  return names;
}

/** Metric names used in a PromQL expression (recording-rule names with a colon are not metrics). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(visittag_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
}

// Grafana's dashboard model (the fields Grafana needs to import a dashboard, and what this one uses).
const DatasourceRef = z.object({ type: z.string(), uid: z.string() }).strict();
const GridPos = z
  .object({
    h: z.number().int().positive(),
    w: z.number().int().min(1).max(24),
    x: z.number().int().min(0).max(23),
    y: z.number().int().min(0),
  })
  .strict()
  .refine((g) => g.x + g.w <= 24, 'a panel must fit in the 24-column grid');
const Target = z
  .object({
    refId: z.string().regex(/^[A-Z]$/),
    datasource: DatasourceRef,
    expr: z.string().min(1),
    legendFormat: z.string(),
  })
  .strict();
const Threshold = z.object({ color: z.string(), value: z.number().nullable() }).strict();
const Panel = z
  .object({
    id: z.number().int().positive(),
    type: z.enum(['row', 'stat', 'timeseries', 'gauge', 'table', 'bargauge', 'text']),
    title: z.string().min(1),
    description: z.string().optional(),
    datasource: DatasourceRef.optional(),
    gridPos: GridPos,
    collapsed: z.boolean().optional(),
    panels: z.array(z.unknown()).optional(),
    targets: z.array(Target).optional(),
    fieldConfig: z
      .object({
        defaults: z
          .object({
            unit: z.string().optional(),
            thresholds: z
              .object({ mode: z.enum(['absolute', 'percentage']), steps: z.array(Threshold).min(1) })
              .strict()
              .optional(),
          })
          .strict(),
        overrides: z.array(z.unknown()),
      })
      .strict()
      .optional(),
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .refine((p) => p.type === 'row' || (p.targets?.length ?? 0) > 0, 'a data panel needs at least one query');
const Variable = z
  .object({
    name: z.string().regex(/^[a-z_]+$/),
    label: z.string(),
    type: z.enum(['datasource', 'query', 'custom', 'interval', 'constant']),
  })
  .loose();
const Dashboard = z
  .object({
    title: z.string().min(1),
    uid: z.string().regex(/^[a-zA-Z0-9_-]{1,40}$/),
    description: z.string(),
    tags: z.array(z.string()),
    timezone: z.string(),
    editable: z.boolean(),
    graphTooltip: z.number().int().min(0).max(2),
    schemaVersion: z.number().int().min(36),
    version: z.number().int(),
    refresh: z.string(),
    time: z.object({ from: z.string(), to: z.string() }).strict(),
    fiscalYearStartMonth: z.number().int(),
    liveNow: z.boolean(),
    links: z.array(z.unknown()),
    annotations: z.object({ list: z.array(z.unknown()) }).strict(),
    templating: z.object({ list: z.array(Variable) }).strict(),
    panels: z.array(Panel).min(1),
  })
  .strict();

const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as unknown;

describe('ops/prometheus/visittag-rules.yml', () => {
  it('passes `promtool check rules`', () => {
    const r = promtool(['check', 'rules', rulesFile]);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.code, r.out).toBe(0);
  });

  it('passes its unit tests (`promtool test rules`): each alert fires on its series, not before its `for`', () => {
    const r = promtool(['test', 'rules', rulesTest]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/SUCCESS/);
  });

  it('covers the alerts operators need, on metrics the gateway registers', () => {
    const text = readFileSync(rulesFile, 'utf8');
    for (const alert of [
      'VisittagReadersOfflineShare',
      'VisittagOutboxOld',
      'VisittagDeadLetters',
      'VisittagIngestRejects',
      'VisittagReadersClockUnsynced',
    ]) {
      expect(text).toContain(`alert: ${alert}\n`);
    }
    const known = gatewayMetricNames();
    expect(known.size).toBeGreaterThan(15);
    const unknown = metricsIn(text).filter((m) => !known.has(m));
    expect(unknown, 'metrics in the rules that the gateway does not register').toEqual([]);
    const kinds = [...text.matchAll(/visittag_reader_alerts\{[^}]*kind="([a-z-]+)"/g)].map((m) => m[1]);
    expect(kinds.length).toBeGreaterThan(0);
    for (const k of kinds) expect(ALERT_KINDS as readonly string[]).toContain(k);
  });

  it('promtool refuses a broken rule (the check can fail)', () => {
    const bad = join(tmp, 'bad.yml');
    writeFileSync(
      bad,
      'groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(rate(visittag_x[5m])\n',
    );
    expect(promtool(['check', 'rules', bad]).code).not.toBe(0);
  });
});

describe('ops/grafana/visittag-gateway.json', () => {
  const parsed = Dashboard.safeParse(dashboard);

  it("matches the schema of Grafana's dashboard model", () => {
    expect(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual(
      [],
    );
  });

  it('has unique panel ids, no overlapping panels, and every query on the datasource variable', () => {
    if (!parsed.success) throw new Error('schema check failed');
    const panels = parsed.data.panels;
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const cells = new Set<string>();
    for (const p of panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          const cell = `${x},${y}`;
          expect(cells.has(cell), `panel "${p.title}" overlaps another at ${cell}`).toBe(false);
          cells.add(cell);
        }
      }
      for (const t of p.targets ?? []) expect(t.datasource.uid).toBe('${datasource}');
    }
    expect(parsed.data.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance']);
  });

  it('queries only metrics the gateway registers, in PromQL that promtool accepts', () => {
    if (!parsed.success) throw new Error('schema check failed');
    const known = gatewayMetricNames();
    const exprs = parsed.data.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(15);
    const unknown = exprs.flatMap(metricsIn).filter((m) => !known.has(m));
    expect(unknown, 'metrics on the dashboard that the gateway does not register').toEqual([]);
    // Grafana's variables replaced by values, each query checked as a recording rule.
    const rules = exprs.map(
      (e, i) =>
        `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e.replaceAll('$instance', '.*').replaceAll('$__rate_interval', '5m'))}\n`,
    );
    const file = join(tmp, 'dashboard-queries.yml');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('')}`);
    const r = promtool(['check', 'rules', file]);
    expect(r.code, r.out).toBe(0);
  });

  it('the schema check can fail (a panel without a grid position is refused)', () => {
    const broken = structuredClone(dashboard) as { panels: Record<string, unknown>[] };
    delete broken.panels[1]!.gridPos;
    expect(Dashboard.safeParse(broken).success).toBe(false);
  });
});
