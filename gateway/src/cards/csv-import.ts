import { CardRef, normalizeUid, pseudonymiseCard, SafeId } from '../../../protocol/index.js';
import { readCsv } from '../care/csv.js';

export interface CardRow {
  line: number;
  cardRef: string;
  staffRef: string;
  /** The normalised UID when the row named one (for the sealed readers' card lists: uid-vault.ts). Never printed. */
  uid?: string;
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

/**
 * Parses a card list: a header row naming `staff` (or `staff_ref`) and either `uid` (the card's UID
 * as printed by the badge system, hex; pseudonymised here with the fleet key, never stored raw) or
 * `card` / `card_ref` (a `c1_…` reference). Every bad row is reported with its line and reason; rows
 * never echo a raw UID back.
 */
export function planCardImport(text: string, fleetKey: string): CsvPlan {
  const good: CardRow[] = [];
  const bad: BadRow[] = [];
  const csv = readCsv(text);
  if (!csv.ok) return { good, bad: [{ line: csv.line, reason: csv.reason }] };
  const header = csv.header.map((h) => h.toLowerCase());
  const staffCol = header.findIndex((h) => h === 'staff' || h === 'staff_ref');
  const uidCol = header.findIndex((h) => h === 'uid');
  const refCol = header.findIndex((h) => h === 'card' || h === 'card_ref');
  if (staffCol < 0 || (uidCol < 0 && refCol < 0)) {
    return {
      good,
      bad: [
        {
          line: csv.headerLine,
          reason: `header must name "staff" and "uid" (or "card_ref"); found: ${header.join(', ').slice(0, 200)}`,
        },
      ],
    };
  }
  const seen = new Map<string, number>();
  for (const { line, fields: cols } of csv.records) {
    if (good.length + bad.length >= MAX_ROWS) {
      bad.push({ line, reason: `more than ${MAX_ROWS} rows: split the file` });
      break;
    }
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
    let uidOfRow: string | undefined;
    const uid = uidCol >= 0 ? (cols[uidCol] ?? '') : '';
    const ref = refCol >= 0 ? (cols[refCol] ?? '') : '';
    if (uid) {
      const n = normalizeUid(uid.replace(/[\s:-]/g, ''));
      if (!n.ok) {
        bad.push({ line, reason: `card UID is not a 4, 7 or 10 byte hex UID (${n.reason})` });
        continue;
      }
      cardRef = pseudonymiseCard(n.uid, fleetKey);
      uidOfRow = n.uid;
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
    good.push({ line, cardRef, staffRef: staff, ...(uidOfRow ? { uid: uidOfRow } : {}) });
  }
  return { good, bad };
}
