/**
 * Writes an eSchoolPLUS download-definition file set for a synthetic district (through
 * `eschoolplus-adapter.ts`), the way eSchoolPLUS writes them (sis-reference §6.3): the
 * definition's delimiter, an optional header row, no quoting or escaping, Windows-1252, and
 * an optional end-of-record column (`#!#`) appended to every row. On request it breaks rows
 * the way real files are broken — raw line breaks (CRLF, LF, lone CR) and delimiters inside
 * values — and writes rows that cannot be repaired (a delimiter inside a column that is not
 * free text), reporting their line numbers so tests can check the rejects.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import type { SyntheticDistrict } from './district-generator.js';
import {
  ESCHOOL_COLUMNS,
  eschoolTables,
  PARKED_PRIORITY,
  type ESchoolRow,
  type ESchoolTables,
} from './eschoolplus-adapter.js';

/** Options of `writeESchoolFiles`. */
export interface ESchoolFileSetOptions {
  /** Target folder (created if missing). */
  dir: string;
  /** Default `|`. */
  delimiter?: string;
  /** Default true. */
  headerRow?: boolean;
  /** Default `windows-1252`. */
  encoding?: string;
  /** End-of-record column value, or null for none. Default `#!#`. */
  marker?: string | null;
  /** Header name of the end-of-record column. Default `EOR`. */
  markerColumn?: string;
  /**
   * Write REG_STU_CONTACT (default true). When false, REG_CONTACT is the "guardian contacts"
   * form: `CONTACT_TYPE` and `CONTACT_PRIORITY` joined in (one row per contact and distinct
   * type/priority over active students' links; contacts without a link are left out).
   */
  studentContacts?: boolean;
  /** Rows broken by raw line breaks (REG_STU_CONTACT COMMENTS, REG_CONTACT STREET_NAME). Default 0. */
  lineBreaks?: number;
  /** REG_STU_CONTACT rows with delimiters inside COMMENTS (repairable: free-text column). Default 0. */
  delimitersInComments?: number;
  /** REG_CONTACT rows of guardians with a delimiter inside APARTMENT (not repairable). Default 0. */
  unrepairable?: number;
  /** File names. */
  names?: Partial<Record<keyof ESchoolTables, string>>;
}

/** What was written. */
export interface ESchoolFileSet {
  /** File name per table (REG_STU_CONTACT absent when not written). */
  names: Partial<Record<keyof ESchoolTables, string>>;
  /** Data rows per table. */
  rows: Partial<Record<keyof ESchoolTables, number>>;
  /** Rows whose values hold raw line breaks / delimiters (repairable). */
  brokenByLineBreaks: number;
  brokenByDelimiters: number;
  /** Unrepairable REG_CONTACT rows: the contact and the physical lines of its row. */
  unrepairable: { file: string; contactId: string; firstLine: number; lastLine: number }[];
  /** REG_STU_CONTACT rows (or joined types) at priority 99. */
  parkedRows: number;
  /** P/M rows. */
  addressRows: number;
}

const LINE_BREAKS = ['\r\n', '\n', '\r'] as const;

function countBreaks(s: string): number {
  return (s.match(/\r\n|\r|\n/g) ?? []).length;
}

/**
 * Write the file set of `d` into `opts.dir`. Returns what was written (line numbers are
 * 1-based physical lines, header included). Rejects on I/O errors.
 */
export async function writeESchoolFiles(
  d: SyntheticDistrict,
  opts: ESchoolFileSetOptions,
): Promise<ESchoolFileSet> {
  const delimiter = opts.delimiter ?? '|';
  const headerRow = opts.headerRow ?? true;
  const encoding = opts.encoding ?? 'windows-1252';
  const marker = opts.marker === undefined ? '#!#' : opts.marker;
  const markerColumn = opts.markerColumn ?? 'EOR';
  const withLinks = opts.studentContacts ?? true;
  const t = eschoolTables(d);
  const names: Required<ESchoolFileSetOptions>['names'] = {
    REG: 'REG.txt',
    REG_BUILDING: 'REG_BUILDING.txt',
    REG_CONTACT: 'REG_CONTACT.txt',
    REG_CONTACT_PHONE: 'REG_CONTACT_PHONE.txt',
    REG_STU_CONTACT: 'REG_STU_CONTACT.txt',
    ...opts.names,
  };
  const result: ESchoolFileSet = {
    names: {},
    rows: {},
    brokenByLineBreaks: 0,
    brokenByDelimiters: 0,
    unrepairable: [],
    parkedRows: 0,
    addressRows: 0,
  };
  await mkdir(opts.dir, { recursive: true });

  const activeIds = new Set(t.REG.filter(r => r.CURRENT_STATUS === 'A').map(r => r.STUDENT_ID));
  const stu = t.REG_STU_CONTACT;
  result.addressRows = stu.filter(r => r.CONTACT_TYPE === 'P' || r.CONTACT_TYPE === 'M').length;

  // Break REG_STU_CONTACT comments (repairable).
  let lb = opts.lineBreaks ?? 0;
  let dl = opts.delimitersInComments ?? 0;
  if (withLinks) {
    result.parkedRows = stu.filter(r => r.CONTACT_PRIORITY === String(PARKED_PRIORITY)).length;
    stu.forEach((r, i) => {
      if (i % 7 !== 3) return;
      if (lb > 0) {
        const br = LINE_BREAKS[lb % LINE_BREAKS.length] ?? '\n';
        r.COMMENTS = `Call before 5pm${br}ask for the office`;
        lb--;
        result.brokenByLineBreaks++;
      } else if (dl > 0) {
        r.COMMENTS = `Aunt ${delimiter} may pick up ${delimiter} Tue/Thu`;
        dl--;
        result.brokenByDelimiters++;
      }
    });
  }

  // REG_CONTACT: plain, or joined with the contact types of active students' links.
  let contactColumns: string[] = [...ESCHOOL_COLUMNS.REG_CONTACT];
  let contacts: ESchoolRow[] = t.REG_CONTACT;
  if (!withLinks) {
    contactColumns = [...contactColumns, 'CONTACT_TYPE', 'CONTACT_PRIORITY'];
    const byId = new Map(t.REG_CONTACT.map(r => [r.CONTACT_ID, r]));
    const seen = new Set<string>();
    contacts = [];
    for (const r of stu) {
      if (!activeIds.has(r.STUDENT_ID ?? '')) continue;
      const k = `${r.CONTACT_ID}|${r.CONTACT_TYPE}|${r.CONTACT_PRIORITY}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const base = byId.get(r.CONTACT_ID ?? '');
      if (!base) continue;
      if (r.CONTACT_TYPE === 'G' && r.CONTACT_PRIORITY === String(PARKED_PRIORITY))
        result.parkedRows++;
      contacts.push({
        ...base,
        CONTACT_TYPE: r.CONTACT_TYPE ?? '',
        CONTACT_PRIORITY: r.CONTACT_PRIORITY ?? '',
      });
    }
    contacts.sort((a, b) => Number(a.CONTACT_ID) - Number(b.CONTACT_ID));
  }
  // Guardians whose only contact row will be unrepairable: chosen among G contacts linked to
  // active students, one REG_CONTACT row each, spread through the file.
  const guardianIds = new Set(
    stu
      .filter(r => r.CONTACT_TYPE === 'G' && activeIds.has(r.STUDENT_ID ?? ''))
      .map(r => r.CONTACT_ID),
  );
  const rowsPerContact = new Map<string, number>();
  for (const r of contacts)
    rowsPerContact.set(r.CONTACT_ID ?? '', (rowsPerContact.get(r.CONTACT_ID ?? '') ?? 0) + 1);
  const victims = new Set<string>();
  const want = opts.unrepairable ?? 0;
  if (want > 0) {
    const candidates = contacts.filter(
      r => guardianIds.has(r.CONTACT_ID) && rowsPerContact.get(r.CONTACT_ID ?? '') === 1,
    );
    const step = Math.max(1, Math.floor(candidates.length / want));
    for (let i = 0; i < candidates.length && victims.size < want; i += step)
      victims.add(candidates[i]?.CONTACT_ID ?? '');
  }
  let lbContacts = opts.lineBreaks ?? 0;
  contacts = contacts.map((r, i) => {
    if (victims.has(r.CONTACT_ID ?? '')) return { ...r, APARTMENT: `Unit 4 ${delimiter} rear` };
    if (lbContacts > 0 && i % 11 === 5) {
      lbContacts--;
      result.brokenByLineBreaks++;
      return { ...r, STREET_NAME: `${r.STREET_NAME ?? ''}\nBuilding C` };
    }
    return r;
  });

  const write = async (
    table: keyof ESchoolTables,
    columns: readonly string[],
    rows: readonly ESchoolRow[],
  ): Promise<void> => {
    const name = names[table] ?? `${table}.txt`;
    const lines: string[] = [];
    let lineNo = 0;
    if (headerRow) {
      lines.push([...columns, ...(marker !== null ? [markerColumn] : [])].join(delimiter));
      lineNo++;
    }
    for (const r of rows) {
      const text = [...columns.map(c => r[c] ?? ''), ...(marker !== null ? [marker] : [])].join(
        delimiter,
      );
      const first = lineNo + 1;
      lineNo += 1 + countBreaks(text);
      if (table === 'REG_CONTACT' && victims.has(r.CONTACT_ID ?? ''))
        result.unrepairable.push({
          file: name,
          contactId: r.CONTACT_ID ?? '',
          firstLine: first,
          lastLine: lineNo,
        });
      lines.push(text);
    }
    await writeFile(join(opts.dir, name), iconv.encode(lines.join('\r\n') + '\r\n', encoding));
    result.names[table] = name;
    result.rows[table] = rows.length;
  };

  await write('REG', ESCHOOL_COLUMNS.REG, t.REG);
  await write('REG_BUILDING', ESCHOOL_COLUMNS.REG_BUILDING, t.REG_BUILDING);
  await write('REG_CONTACT', contactColumns, contacts);
  await write('REG_CONTACT_PHONE', ESCHOOL_COLUMNS.REG_CONTACT_PHONE, t.REG_CONTACT_PHONE);
  if (withLinks) await write('REG_STU_CONTACT', ESCHOOL_COLUMNS.REG_STU_CONTACT, stu);
  return result;
}
