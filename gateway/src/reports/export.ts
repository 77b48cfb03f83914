/**
 * Report exports: JSON pages, CSV and XLSX (exceljs), with Swedish (default) or English column headers.
 * Every report becomes named tables (the main rows first, then summary and data quality), and each export
 * writes those tables: one CSV per table, one XLSX sheet per table.
 */
import type ExcelJS from 'exceljs';
import type { ContinuityReport } from './continuity.js';
import type { ExecutedReport } from './executed.js';
import type { DataQuality } from './quality.js';
import type { MonthlyReport, QualityReport } from './run.js';
import type { StaffingReport } from './staffing.js';

export type AnyReport = ExecutedReport | ContinuityReport | MonthlyReport | StaffingReport | QualityReport;
export type Lang = 'sv' | 'en';

export interface Column {
  key: string;
  sv: string;
  en: string;
}

export type Cell = string | number | boolean | null;

export interface Table {
  name: string;
  columns: Column[];
  rows: Array<Record<string, Cell>>;
}

const col = (key: string, sv: string, en: string): Column => ({ key, sv, en });

const QUALITY_COLUMNS: Column[] = [
  col('visits', 'Besök', 'Visits'),
  col('autoClosed', 'Autoavslutade', 'Auto-closed'),
  col('corrected', 'Korrigerade', 'Corrected'),
  col('unknownCard', 'Okänt kort', 'Unknown card'),
  col('uncorrectableTime', 'Okorrigerbar tid', 'Uncorrectable time'),
  col('lateDelivered', 'Sent levererade', 'Delivered late'),
  col('incomplete', 'Ofullständiga', 'Incomplete'),
  col('withdrawn', 'Felstämplingar (räknas inte)', 'Withdrawn taps (not counted)'),
  col('shareAutoClosed', 'Andel autoavslutade', 'Share auto-closed'),
  col('shareCorrected', 'Andel korrigerade', 'Share corrected'),
  col('shareUnknownCard', 'Andel okänt kort', 'Share unknown card'),
  col('shareUncorrectableTime', 'Andel okorrigerbar tid', 'Share uncorrectable time'),
  col('shareLateDelivered', 'Andel sent levererade', 'Share delivered late'),
  col('shareWithdrawn', 'Andel felstämplingar', 'Share withdrawn'),
];

export const EXECUTED_COLUMNS: Column[] = [
  col('period', 'Period', 'Period'),
  col('clientRef', 'Brukare', 'Client'),
  col('teamId', 'Grupp', 'Team'),
  col('areaId', 'Område', 'Area'),
  col('providerId', 'Utförare', 'Provider'),
  col('serviceCode', 'Insatskod', 'Service code'),
  col('plannedVisits', 'Planerade besök', 'Planned visits'),
  col('plannedMinutes', 'Planerad tid (min)', 'Planned minutes'),
  col('grantedMinutes', 'Beviljad tid (min)', 'Granted minutes'),
  col('executedVisits', 'Utförda besök', 'Executed visits'),
  col('executedMinutes', 'Utförd tid (min)', 'Executed minutes'),
  col('executedStaffMinutes', 'Utförd personaltid (min)', 'Executed staff minutes'),
  col('executedWithoutMinutes', 'Besök utan känd tid', 'Visits without known time'),
  col('ratio', 'Utförd/planerad', 'Executed/planned'),
  col('matched', 'I tid', 'On time'),
  col('late', 'Sena', 'Late'),
  col('missed', 'Uteblivna', 'Missed'),
  col('understaffed', 'Underbemannade', 'Understaffed'),
  col('pending', 'Ej avgjorda', 'Pending'),
  col('unplanned', 'Oplanerade', 'Unplanned'),
  col('missedClientCancelled', 'Uteblivna: brukaren avbokade', 'Missed: client cancelled'),
  col('missedClientInHospital', 'Uteblivna: brukaren på sjukhus', 'Missed: client in hospital'),
  col('missedStaffIll', 'Uteblivna: personal sjuk', 'Missed: staff ill'),
  col('missedOther', 'Uteblivna: annat', 'Missed: other'),
  col('missedNoReason', 'Uteblivna: ingen orsak', 'Missed: no reason'),
];

const SUMMARY_COLUMNS = [col('figure', 'Mått', 'Figure'), col('value', 'Värde', 'Value')];

function qualityTables(q: DataQuality): Table[] {
  const flat = (r: DataQuality['total']): Record<string, Cell> => ({
    visits: r.visits,
    autoClosed: r.autoClosed,
    corrected: r.corrected,
    unknownCard: r.unknownCard,
    uncorrectableTime: r.uncorrectableTime,
    lateDelivered: r.lateDelivered,
    incomplete: r.incomplete,
    withdrawn: r.withdrawn,
    shareAutoClosed: r.shares.autoClosed,
    shareCorrected: r.shares.corrected,
    shareUnknownCard: r.shares.unknownCard,
    shareUncorrectableTime: r.shares.uncorrectableTime,
    shareLateDelivered: r.shares.lateDelivered,
    shareWithdrawn: r.shares.withdrawn,
  });
  return [
    {
      name: 'quality-area',
      columns: [col('areaId', 'Område', 'Area'), ...QUALITY_COLUMNS],
      rows: [
        { areaId: '(all)', ...flat(q.total) },
        ...q.byArea.map((r) => ({ areaId: r.areaId, ...flat(r) })),
      ],
    },
    {
      name: 'quality-reader',
      columns: [col('readerId', 'Läsare', 'Reader'), ...QUALITY_COLUMNS],
      rows: q.byReader.map((r) => ({ readerId: r.readerId, ...flat(r) })),
    },
    {
      // Secure card vs UID only, per area and reader; empty when the gateway does not check secure cards.
      name: 'quality-assurance',
      columns: [
        col('areaId', 'Område', 'Area'),
        col('readerId', 'Läsare', 'Reader'),
        col('taps', 'Kortläsningar', 'Taps'),
        col('secure', 'Säkert kort', 'Secure card'),
        col('uidOnly', 'Endast UID', 'UID only'),
        col('shareSecure', 'Andel säkert kort', 'Share secure card'),
        col('shareUidOnly', 'Andel endast UID', 'Share UID only'),
      ],
      rows: !q.assurance.recorded
        ? []
        : [
            { areaId: '(all)', readerId: null, ...q.assurance.total },
            ...q.assurance.byArea.map((r) => ({ ...r, readerId: null })),
            ...q.assurance.byReader.map((r) => ({ ...r, areaId: null })),
          ],
    },
  ];
}

const pick = (o: object, cols: Column[]): Record<string, Cell> => {
  const r = o as Record<string, unknown>;
  return Object.fromEntries(cols.map((c) => [c.key, (r[c.key] ?? null) as Cell]));
};

/** The report as tables: the main rows first. */
export function tablesOf(report: AnyReport): Table[] {
  switch (report.kind) {
    case 'executed-vs-planned':
      return [
        { name: 'rows', columns: EXECUTED_COLUMNS, rows: report.rows.map((r) => pick(r, EXECUTED_COLUMNS)) },
        { name: 'total', columns: EXECUTED_COLUMNS, rows: [pick(report.total, EXECUTED_COLUMNS)] },
        {
          name: 'differences',
          columns: [
            col('bin', 'Utförd − planerad (min)', 'Executed − planned (min)'),
            col('count', 'Besök', 'Visits'),
          ],
          rows: report.differences.bins,
        },
        ...qualityTables(report.quality),
      ];
    case 'continuity': {
      const clientCols = [
        col('clientRef', 'Brukare', 'Client'),
        col('areaId', 'Område', 'Area'),
        col('staff', 'Antal personal', 'Staff'),
        col('staffWithoutDoubleStaffing', 'Utan dubbelbemanning', 'Without double staffing'),
        col('palliative', 'Palliativ', 'Palliative'),
        col('doubleStaffedOccasions', 'Dubbelbemannade besök', 'Double-staffed visits'),
        col('countedVisits', 'Räknade besök', 'Counted visits'),
        col('careContactVisits', 'Besök av fast omsorgskontakt', 'Visits by care contact'),
      ];
      const areaCols = [
        col('areaId', 'Område', 'Area'),
        col('clients', 'Brukare', 'Clients'),
        col('mean', 'Medelvärde', 'Mean'),
        col('median', 'Median', 'Median'),
      ];
      return [
        {
          name: 'areas',
          columns: areaCols,
          rows: [
            { areaId: '(all)', clients: report.clients, mean: report.mean, median: report.median },
            ...report.byArea.map((a) => pick(a, areaCols)),
          ],
        },
        { name: 'clients', columns: clientCols, rows: report.rows.map((r) => pick(r, clientCols)) },
        {
          name: 'distribution',
          columns: [col('staff', 'Antal personal', 'Staff'), col('clients', 'Brukare', 'Clients')],
          rows: report.distribution,
        },
        {
          name: 'excluded',
          columns: [
            col('clientRef', 'Brukare', 'Client'),
            col('areaId', 'Område', 'Area'),
            col('reason', 'Orsak', 'Reason'),
            col('detail', 'Detalj', 'Detail'),
          ],
          rows: report.excluded.map((e) => ({ ...e })),
        },
        {
          name: 'summary',
          columns: SUMMARY_COLUMNS,
          rows: [
            ...Object.entries(report.breakdown).map(([figure, value]) => ({ figure, value })),
            { figure: 'careContactShare', value: report.careContact.share },
            { figure: 'clientsWithCareContact', value: report.careContact.clientsWithContact },
            { figure: 'clientsWithoutCareContact', value: report.careContact.clientsWithoutContact },
          ],
        },
        ...qualityTables(report.quality),
      ];
    }
    case 'continuity-monthly': {
      const cols = [
        col('month', 'Månad', 'Month'),
        col('fromDate', 'Från', 'From'),
        col('toDate', 'Till', 'To'),
        col('areaId', 'Område', 'Area'),
        col('clients', 'Brukare', 'Clients'),
        col('mean', 'Medelvärde', 'Mean'),
        col('median', 'Median', 'Median'),
        col('threshold', 'Gränsvärde', 'Threshold'),
        col('analyse', 'Analyseras', 'Analyse'),
      ];
      return [
        { name: 'rows', columns: cols, rows: report.rows.map((r) => pick(r, cols)) },
        ...qualityTables(report.quality),
      ];
    }
    case 'double-staffing': {
      const cols = [
        col('areaId', 'Område', 'Area'),
        col('plannedVisits', 'Planerade besök', 'Planned visits'),
        col('plannedDouble', 'Planerat dubbelbemannade', 'Planned double-staffed'),
        col('plannedDoubleShare', 'Andel planerat dubbelbemannade', 'Share planned double-staffed'),
        col('executedOccasions', 'Utförda besök', 'Executed visits'),
        col('executedDouble', 'Utfört dubbelbemannade', 'Executed double-staffed'),
        col('executedDoubleShare', 'Andel utfört dubbelbemannade', 'Share executed double-staffed'),
        col('understaffed', 'Underbemannade', 'Understaffed'),
        col('unplannedDouble', 'Oplanerat dubbelbemannade', 'Unplanned double-staffed'),
      ];
      return [
        { name: 'rows', columns: cols, rows: [report.total, ...report.rows].map((r) => pick(r, cols)) },
        ...qualityTables(report.quality),
      ];
    }
    case 'data-quality':
      return qualityTables(report.quality);
  }
}

/** The report as JSON with the main table's rows paged (offset, limit); everything else whole. */
export function jsonPage(report: AnyReport, offset = 0, limit = 500): Record<string, unknown> {
  const main = tablesOf(report)[0]!;
  const { quality, ...rest } = report;
  const body: Record<string, unknown> = { ...rest };
  delete body.rows;
  return {
    ...body,
    table: main.name,
    page: { offset, limit, total: main.rows.length },
    rows: main.rows.slice(offset, offset + limit),
    quality,
  };
}

const csvCell = (v: Cell, sep: string, lang: Lang): string => {
  if (v === null) return '';
  let s = typeof v === 'number' && lang === 'sv' ? String(v).replace('.', ',') : String(v);
  if (typeof v === 'boolean') s = lang === 'sv' ? (v ? 'ja' : 'nej') : String(v);
  return s.includes(sep) || s.includes('"') || s.includes('\n') ? `"${s.replace(/"/g, '""')}"` : s;
};

/**
 * One table as CSV. Swedish: ';' between fields and a decimal comma (what Swedish spreadsheet programs
 * expect); English: ',' and a decimal point. Lines end with CRLF (RFC 4180).
 */
export function toCsv(table: Table, lang: Lang = 'sv'): string {
  const sep = lang === 'sv' ? ';' : ',';
  const lines = [table.columns.map((c) => csvCell(c[lang], sep, lang)).join(sep)];
  for (const r of table.rows)
    lines.push(table.columns.map((c) => csvCell(r[c.key] ?? null, sep, lang)).join(sep));
  return lines.join('\r\n') + '\r\n';
}

/**
 * exceljs is loaded on the first workbook, not with the gateway: it is the heaviest package the gateway uses
 * (about 0.45 s of CPU to load on a 2-core machine, a third of a gateway's start), and most starts (the service,
 * every CLI subcommand, each restart after a crash) never write a workbook.
 */
const excel = async (): Promise<typeof ExcelJS> => (await import('exceljs')).default;

/** The whole report as one XLSX workbook: a sheet per table, headers in `lang`, numbers as numbers. */
export async function toXlsx(report: AnyReport, lang: Lang = 'sv'): Promise<Buffer> {
  const wb = new (await excel()).Workbook();
  wb.creator = 'visittag';
  for (const t of tablesOf(report)) {
    const ws = wb.addWorksheet(t.name);
    ws.addRow(t.columns.map((c) => c[lang]));
    ws.getRow(1).font = { bold: true };
    for (const r of t.rows) ws.addRow(t.columns.map((c) => r[c.key] ?? null));
    ws.columns.forEach((c, i) => (c.width = Math.max(10, Math.min(40, t.columns[i]![lang].length + 2))));
  }
  return Buffer.from(await wb.xlsx.writeBuffer());
}

/** Reads a workbook written by toXlsx back into tables of plain values (tests, round trips). */
export async function readXlsx(
  buf: Buffer,
): Promise<Array<{ name: string; header: string[]; rows: Cell[][] }>> {
  const wb = new (await excel()).Workbook();
  await wb.xlsx.load(buf as unknown as ArrayBuffer);
  return wb.worksheets.map((ws) => {
    const all: Cell[][] = [];
    const width = ws.getRow(1).cellCount;
    ws.eachRow({ includeEmpty: true }, (row) => {
      // row.values is sparse and 1-based; empty cells (null values) are holes, trailing ones absent.
      const vals = row.values as unknown[];
      all.push(Array.from({ length: width }, (_, i) => (vals[i + 1] ?? null) as Cell));
    });
    const [header = [], ...rows] = all;
    return { name: ws.name, header: header.map(String), rows };
  });
}
