/**
 * Reading CSV files as Swedish planning and badge systems export them, on csv-parse: UTF-8 with or
 * without BOM, or Windows-1252 (Excel "CSV (semikolonavgränsad)"); separator `;`, `,` or tab, chosen
 * from the header line; `#` comment lines and empty lines skipped; every record with its line number.
 */
import { parse } from 'csv-parse/sync';

export interface CsvRecord {
  /** 1-based line number of the record's first line in the file. */
  line: number;
  fields: string[];
}

export type CsvRead =
  | { ok: true; delimiter: string; header: string[]; headerLine: number; records: CsvRecord[] }
  | { ok: false; line: number; reason: string };

/**
 * Bytes → text: a UTF-8 BOM means UTF-8; otherwise strict UTF-8, and if that fails Windows-1252 (what
 * Excel writes on Swedish Windows: å = 0xE5 is never valid UTF-8 on its own).
 */
export function decodeCsvBytes(bytes: Uint8Array): { text: string; encoding: 'utf-8' | 'windows-1252' } {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    return { text: new TextDecoder('utf-8').decode(bytes.subarray(3)), encoding: 'utf-8' };
  }
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), encoding: 'utf-8' };
  } catch {
    return { text: new TextDecoder('windows-1252').decode(bytes), encoding: 'windows-1252' };
  }
}

/** The separator used in the header line: the most frequent of `;`, `,`, tab outside quotes. */
export function sniffDelimiter(headerLine: string): string {
  const counts = new Map<string, number>([
    [';', 0],
    [',', 0],
    ['\t', 0],
  ]);
  let quoted = false;
  for (const ch of headerLine) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && counts.has(ch)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  }
  let best = ',';
  let n = 0;
  for (const [c, k] of counts) {
    if (k > n) {
      best = c;
      n = k;
    }
  }
  return best;
}

/** Parses CSV text with a header row. Comment (`#`) and empty lines are skipped. */
export function readCsv(input: string, opts: { maxRecords?: number } = {}): CsvRead {
  const text = input.replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/);
  const headerIdx = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (headerIdx < 0)
    return { ok: false, line: 1, reason: 'the file is empty: it needs a header row and data rows' };
  const delimiter = sniffDelimiter(lines[headerIdx]!);
  let rows: Array<{ record: string[]; info: { lines: number; raw?: string } }>;
  try {
    rows = parse(text, {
      delimiter,
      comment: '#',
      comment_no_infix: true,
      skip_empty_lines: true,
      relax_column_count: true,
      trim: true,
      info: true,
      raw: true,
      to: opts.maxRecords ? opts.maxRecords + 1 : undefined,
    }) as unknown as Array<{ record: string[]; info: { lines: number; raw?: string } }>;
  } catch (e) {
    const err = e as { lines?: number; message: string };
    return {
      ok: false,
      line: err.lines ?? 1,
      reason: `the file is not valid CSV (${err.message.replace(/^Invalid \w+ /, '').slice(0, 160)}): check the quotes`,
    };
  }
  const [head, ...rest] = rows;
  if (!head) return { ok: false, line: 1, reason: 'the file is empty: it needs a header row and data rows' };
  const firstLine = (r: { info: { lines: number; raw?: string } }): number =>
    r.info.lines -
    ((r.info.raw ?? '')
      .replace(/^(?:[ \t]*(?:#[^\n]*)?\r?\n)+/, '')
      .replace(/\r?\n$/, '')
      .split(/\r?\n/).length -
      1);
  return {
    ok: true,
    delimiter,
    header: head.record,
    headerLine: firstLine(head),
    records: rest.map((r) => ({ line: firstLine(r), fields: r.record })),
  };
}
