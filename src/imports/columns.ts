/**
 * Columns of import files: which fields each import has, the header spellings that name
 * them, and turning a file's rows into typed records with row-level issues.
 *
 * Header matching ignores case, accents, spaces and punctuation: `First Name`, `first_name`
 * and `FIRSTNAME` all name the First Name field (each field lists the spellings it accepts in
 * `aliases`). The admin can also map a field to a column explicitly, by header text or by
 * 1-based column number — needed when a file has no header row or names its columns
 * differently.
 */
import { z } from 'zod';
import { cellDisplay, cellText, isBareNumber, type CellKind, type SheetCell } from './cells.js';
import type { RowIssue } from '../reconcile/import-plan.js';
import { ImportFileError } from './errors.js';
import type { SheetRow } from './read.js';

/** One field of an import file. */
export interface FieldSpec<K extends string = string> {
  key: K;
  /** Column name used in messages and reports. */
  label: string;
  /** Normalised header spellings (see `normalizeHeader`) that name this field. */
  aliases: readonly string[];
  /**
   * Spellings used only when no column matches `aliases` (the association import reads a bare
   * `Unique ID` column as the parent's: PowerSchool's contacts template names it so).
   */
  fallbackAliases?: readonly string[];
  kind: CellKind;
}

/** Fields of the parent account import. */
export const PARENT_FIELDS = [
  {
    key: 'firstName',
    label: 'First Name',
    aliases: ['firstname', 'givenname', 'first', 'fname', 'parentfirstname', 'guardianfirstname'],
    kind: 'text',
  },
  {
    key: 'lastName',
    label: 'Last Name',
    aliases: [
      'lastname',
      'familyname',
      'surname',
      'last',
      'lname',
      'parentlastname',
      'guardianlastname',
    ],
    kind: 'text',
  },
  {
    key: 'uniqueId',
    label: 'Unique ID',
    aliases: [
      'uniqueid',
      'uid',
      'id',
      'parentuniqueid',
      'parentid',
      'guardianuniqueid',
      'guardianid',
      'userid',
      'uniqueuserid',
    ],
    kind: 'identifier',
  },
  {
    key: 'username',
    label: 'Username',
    aliases: ['username', 'login', 'loginid', 'loginname', 'user'],
    kind: 'text',
  },
  {
    key: 'email',
    label: 'Email',
    aliases: ['email', 'emailaddress', 'mail', 'parentemail', 'guardianemail'],
    kind: 'text',
  },
  { key: 'role', label: 'Role', aliases: ['role', 'userrole', 'roles'], kind: 'text' },
  {
    key: 'school',
    label: 'School',
    aliases: ['school', 'schoolname', 'building', 'schoolid', 'schoolcode'],
    kind: 'text',
  },
] as const satisfies readonly FieldSpec[];
export type ParentField = (typeof PARENT_FIELDS)[number]['key'];

/** Fields of the parent↔student association import. */
export const ASSOCIATION_FIELDS = [
  {
    key: 'parentUniqueId',
    label: 'Parent Unique ID',
    aliases: [
      'parentuniqueid',
      'parentid',
      'parent',
      'guardianuniqueid',
      'guardianid',
      'guardian',
      'parentuid',
    ],
    fallbackAliases: ['uniqueid', 'contactid'],
    kind: 'identifier',
  },
  {
    key: 'studentUniqueId',
    label: 'Student Unique ID',
    aliases: [
      'studentuniqueid',
      'studentid',
      'student',
      'studentnumber',
      'studentuid',
      'childuniqueid',
      'childid',
    ],
    kind: 'identifier',
  },
] as const satisfies readonly FieldSpec[];
export type AssociationField = (typeof ASSOCIATION_FIELDS)[number]['key'];

/**
 * Explicit column mapping: field key → header text or 1-based column number. Strings of
 * digits count as column numbers (so CLI `--column parentUniqueId=3` works).
 */
export const ColumnMapping = z.record(
  z.string(),
  z.union([z.string().trim().min(1), z.number().int().min(1)]),
);
export type ColumnMapping = z.infer<typeof ColumnMapping>;

/** Lower-case, accents removed, only letters and digits: `E-Mail Address ` → `emailaddress`. */
export function normalizeHeader(h: string): string {
  return h
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');
}

/** Spreadsheet column letter of a 0-based index: 0 → A, 27 → AB. */
export function columnLetter(index: number): string {
  let n = index + 1;
  let s = '';
  while (n > 0) {
    const r = (n - 1) % 26;
    s = String.fromCharCode(65 + r) + s;
    n = Math.floor((n - 1) / 26);
  }
  return s;
}

/** Where each field is: 0-based column index and the header text (or the column letter). */
export type ColumnLayout<K extends string> = Partial<Record<K, { index: number; header: string }>>;

/**
 * Decide which column holds which field. `headers` is the header row (undefined when the
 * file has none). With a header row, fields are found by alias unless `mapping` says
 * otherwise; without one, `mapping` (column numbers) or `defaultOrder` decides.
 * Throws `ImportFileError` when a mapping names an unknown field or header, when two
 * columns match one field, or when a `required` field has no column.
 */
export function resolveColumns<K extends string>(
  fileName: string,
  fields: readonly FieldSpec<K>[],
  headers: string[] | undefined,
  mapping: ColumnMapping | undefined,
  required: readonly K[],
  defaultOrder: readonly K[] = [],
): ColumnLayout<K> {
  const layout: ColumnLayout<K> = {};
  const byKey = new Map<string, FieldSpec<K>>(fields.map(f => [f.key, f]));
  const normalized = headers?.map(normalizeHeader) ?? [];
  const headerName = (i: number) => {
    const h = headers?.[i]?.trim();
    return h ? h : `column ${columnLetter(i)}`;
  };
  const mapped = new Set<string>();
  for (const [key, target] of Object.entries(mapping ?? {})) {
    const field = byKey.get(key);
    if (!field) {
      throw new ImportFileError(
        fileName,
        `column mapping names an unknown field "${key}" (fields: ${fields.map(f => f.key).join(', ')})`,
      );
    }
    let index: number;
    if (typeof target === 'number' || /^\d+$/.test(target)) {
      index = Number(target) - 1;
    } else {
      const want = normalizeHeader(target);
      const hits = normalized.flatMap((h, i) => (h === want && want !== '' ? [i] : []));
      if (hits.length !== 1) {
        throw new ImportFileError(
          fileName,
          hits.length === 0
            ? `column mapping: no column is headed "${target}" (headers: ${(headers ?? []).map(h => `"${h}"`).join(', ') || 'none — the file has no header row; map by column number'})`
            : `column mapping: ${hits.length} columns are headed "${target}" (${hits.map(columnLetter).join(', ')}); map by column number`,
        );
      }
      index = hits[0] ?? 0;
    }
    layout[field.key] = { index, header: headerName(index) };
    mapped.add(field.key);
  }
  if (headers) {
    const usedColumns = new Set(
      Object.values<{ index: number } | undefined>(layout).map(v => v?.index),
    );
    for (const field of fields) {
      if (mapped.has(field.key)) continue;
      const find = (aliases: readonly string[]) =>
        normalized.flatMap((h, i) => (aliases.includes(h) && !usedColumns.has(i) ? [i] : []));
      let hits = find(field.aliases);
      if (hits.length === 0 && field.fallbackAliases) hits = find(field.fallbackAliases);
      if (hits.length > 1) {
        throw new ImportFileError(
          fileName,
          `${hits.length} columns could be ${field.label}: ${hits.map(i => `${columnLetter(i)} ("${headers[i] ?? ''}")`).join(', ')}; map the column explicitly`,
        );
      }
      const i = hits[0];
      if (i !== undefined) layout[field.key] = { index: i, header: headerName(i) };
    }
  } else {
    defaultOrder.forEach((key, i) => {
      if (!mapped.has(key)) layout[key] = { index: i, header: `column ${columnLetter(i)}` };
    });
  }
  const missing = required.filter(k => layout[k] === undefined);
  if (missing.length > 0) {
    const labels = missing.map(k => byKey.get(k)?.label ?? k);
    throw new ImportFileError(
      fileName,
      `missing required column${missing.length > 1 ? 's' : ''} ${labels.map(l => `"${l}"`).join(', ')}` +
        (headers
          ? ` (headers found: ${headers.map(h => `"${h}"`).join(', ') || 'none'}); rename the columns or map them explicitly`
          : ''),
    );
  }
  return layout;
}

/** A record of an import with its spreadsheet row number. */
export type RowRecord<K extends string> = { row: number } & Partial<Record<K, string>>;

/** Per-field validation after the cell became text; returns a reason when invalid. */
export type FieldCheck = (text: string) => string | undefined;

/**
 * Labels of the fields a row's texts would name as a header (by alias or fallback alias), in
 * field order. Used to say which row of a file looks like its header.
 */
export function headerMatches(fields: readonly FieldSpec[], texts: readonly string[]): string[] {
  const normalized = new Set(texts.map(normalizeHeader));
  return fields
    .filter(f => [...f.aliases, ...(f.fallbackAliases ?? [])].some(a => normalized.has(a)))
    .map(f => f.label);
}

/** Header row texts (cells as lenient text). */
export function headerTexts(row: SheetRow): string[] {
  return row.cells.map(c => {
    const t = cellText(c, 'text');
    return t.ok ? t.text : cellDisplay(c);
  });
}

/**
 * Turn a data row into a record. Fully blank rows give undefined (Excel leaves trailing empty
 * rows). Each bad cell becomes a `RowIssue` (error) and `ok: false`; the record then holds the
 * fields that were readable (the association import still needs to know which student a bad
 * row named).
 * `required` fields must be non-blank; `checks` validate non-blank values. `numeric` lists the
 * identifier fields read from a bare Excel number (see `isBareNumber`).
 */
export function toRecord<K extends string>(
  fileName: string,
  fields: readonly FieldSpec<K>[],
  layout: ColumnLayout<K>,
  row: SheetRow,
  required: readonly K[],
  checks: Partial<Record<K, FieldCheck>>,
  issues: RowIssue[],
): { record: RowRecord<K>; ok: boolean; numeric: K[] } | undefined {
  if (row.cells.every(c => c.t === 'empty' || (c.t === 'text' && c.text.trim() === ''))) {
    return undefined;
  }
  const record: RowRecord<K> = { row: row.row } as RowRecord<K>;
  let ok = true;
  const numeric: K[] = [];
  for (const field of fields) {
    const at = layout[field.key];
    if (!at) continue;
    const cell: SheetCell = row.cells[at.index] ?? { t: 'empty' };
    const t = cellText(cell, field.kind);
    const bad = (reason: string) => {
      ok = false;
      issues.push({
        file: fileName,
        row: row.row,
        column: at.header,
        value: cellDisplay(cell),
        reason,
        severity: 'error',
      });
    };
    if (!t.ok) {
      bad(t.reason);
      continue;
    }
    const text = field.kind === 'text' ? t.text.replace(/\s+/g, ' ') : t.text;
    if (text === '') {
      if (required.includes(field.key)) bad(`${field.label} is blank`);
      continue;
    }
    const reason = checks[field.key]?.(text);
    if (reason) {
      bad(reason);
      continue;
    }
    record[field.key] = text as RowRecord<K>[K];
    if (field.kind === 'identifier' && isBareNumber(cell)) numeric.push(field.key);
  }
  return { record, ok, numeric };
}
