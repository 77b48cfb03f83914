/**
 * The browser side of a plan file: bytes → text (UTF-8, else Windows-1252 as Excel writes it), the
 * separator from the header line, quoted fields, `#` comments and empty lines skipped. Each row becomes
 * an object with the JSON API's field names (values left as text: the server parses times, decimal
 * commas and service codes exactly as for the CLI import) and keeps its line in the file.
 */
export interface CsvRows {
  rows: { line: number; row: Record<string, string> }[];
  missing: boolean;
}

const HEADERS: Record<string, string> = {
  planned_visit_id: 'plannedVisitId',
  visit_id: 'plannedVisitId',
  besok_id: 'plannedVisitId',
  besoks_id: 'plannedVisitId',
  client_ref: 'clientRef',
  client: 'clientRef',
  brukare: 'clientRef',
  brukar_id: 'clientRef',
  date: 'date',
  datum: 'date',
  start: 'start',
  starttid: 'start',
  tid: 'start',
  planned_minutes: 'plannedMinutes',
  minutes: 'plannedMinutes',
  minuter: 'plannedMinutes',
  planerad_tid: 'plannedMinutes',
  service_codes: 'serviceCodes',
  insatser: 'serviceCodes',
  insatskoder: 'serviceCodes',
  staff_count: 'staffCount',
  antal_personal: 'staffCount',
  dubbelbemanning: 'staffCount',
  staff: 'staffRefs',
  staff_refs: 'staffRefs',
  personal: 'staffRefs',
};

const norm = (h: string): string =>
  h
    .trim()
    .toLowerCase()
    .replace(/[åä]/g, 'a')
    .replace(/ö/g, 'o')
    .replace(/[\s-]+/g, '_');

export function decode(bytes: Uint8Array): string {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf)
    return new TextDecoder().decode(bytes.subarray(3));
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

function splitLine(line: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export function planRows(text: string): CsvRows {
  const lines = text.split(/\r?\n/);
  let headerAt = lines.findIndex((l) => l.trim() !== '' && !l.startsWith('#'));
  if (headerAt < 0) return { rows: [], missing: true };
  const headerLine = lines[headerAt] ?? '';
  const sep = [';', '\t', ','].reduce((best, s) =>
    splitLine(headerLine, s).length > splitLine(headerLine, best).length ? s : best,
  );
  const keys = splitLine(headerLine, sep).map((h) => HEADERS[norm(h)] ?? null);
  const missing = !keys.includes('clientRef') || !keys.includes('start');
  const rows: CsvRows['rows'] = [];
  for (let i = headerAt + 1; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (l.trim() === '' || l.startsWith('#')) continue;
    const fields = splitLine(l, sep);
    const row: Record<string, string> = {};
    keys.forEach((k, j) => {
      const v = (fields[j] ?? '').trim();
      if (k && v !== '') row[k] = v;
    });
    rows.push({ line: i + 1, row });
  }
  headerAt = 0;
  return { rows, missing };
}
