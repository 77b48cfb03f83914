import { CardRef, normalizeUid, pseudonymiseCard, SafeId } from '../../../protocol/index.js';

export interface CardRow {
  line: number;
  cardRef: string;
  staffRef: string;
}

export interface BadRow {
  line: number;
  reason: string;
}

export interface CsvPlan {
  good: CardRow[];
  bad: BadRow[];
}

const MAX_ROWS = 100_000;

/** Splits one CSV line (commas or semicolons; "quoted, fields" with "" escapes). */
export function splitCsvLine(line: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur.trim() === '') {
      quoted = true;
      cur = '';
    } else if (ch === sep) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/**
 * Parses a card list: a header row naming `staff` (or `staff_ref`) and either `uid` (the card's UID
 * as printed by the badge system, hex; pseudonymised here with the fleet key, never stored raw) or
 * `card` / `card_ref` (a `c1_…` reference). Every bad row is reported with its line and reason; rows
 * never echo a raw UID back.
 */
export function planCardImport(text: string, fleetKey: string): CsvPlan {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const good: CardRow[] = [];
  const bad: BadRow[] = [];
  const headerIdx = lines.findIndex((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (headerIdx < 0) return { good, bad: [{ line: 1, reason: 'the file is empty' }] };
  const headerLine = lines[headerIdx] as string;
  const sep = headerLine.includes(';') && !headerLine.includes(',') ? ';' : ',';
  const header = splitCsvLine(headerLine, sep).map((h) => h.toLowerCase());
  const staffCol = header.findIndex((h) => h === 'staff' || h === 'staff_ref');
  const uidCol = header.findIndex((h) => h === 'uid');
  const refCol = header.findIndex((h) => h === 'card' || h === 'card_ref');
  if (staffCol < 0 || (uidCol < 0 && refCol < 0)) {
    return {
      good,
      bad: [
        {
          line: headerIdx + 1,
          reason: `header must name "staff" and "uid" (or "card_ref"); found: ${header.join(', ').slice(0, 200)}`,
        },
      ],
    };
  }
  const seen = new Map<string, number>();
  for (let i = headerIdx + 1; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    const line = i + 1;
    if (raw === '' || raw.startsWith('#')) continue;
    if (good.length + bad.length >= MAX_ROWS) {
      bad.push({ line, reason: `more than ${MAX_ROWS} rows: split the file` });
      break;
    }
    const cols = splitCsvLine(raw, sep);
    const staff = cols[staffCol] ?? '';
    if (!SafeId.safeParse(staff).success) {
      bad.push({
        line,
        reason: staff
          ? 'staff reference uses characters other than letters, digits, ".", "_", "-"'
          : 'staff reference is empty',
      });
      continue;
    }
    let cardRef: string;
    const uid = uidCol >= 0 ? (cols[uidCol] ?? '') : '';
    const ref = refCol >= 0 ? (cols[refCol] ?? '') : '';
    if (uid) {
      const n = normalizeUid(uid.replace(/[\s:-]/g, ''));
      if (!n.ok) {
        bad.push({ line, reason: `card UID is not a 4, 7 or 10 byte hex UID (${n.reason})` });
        continue;
      }
      cardRef = pseudonymiseCard(n.uid, fleetKey);
    } else if (ref) {
      if (!CardRef.safeParse(ref).success) {
        bad.push({ line, reason: 'card_ref is not a c1_ reference (c1_ + 32 hex digits)' });
        continue;
      }
      cardRef = ref;
    } else {
      bad.push({ line, reason: 'no card UID / card_ref on this row' });
      continue;
    }
    const dup = seen.get(cardRef);
    if (dup !== undefined) {
      bad.push({ line, reason: `the same card is already on line ${dup}` });
      continue;
    }
    seen.set(cardRef, line);
    good.push({ line, cardRef, staffRef: staff });
  }
  return { good, bad };
}
