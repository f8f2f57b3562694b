/**
 * Inspecting an import file before a preview (the console's "map columns" step): which row
 * the importer takes as the header, which column it would read each field from, and the
 * file's first rows as text — without planning anything or writing to the store.
 *
 * It reads only the top of the file: the header search rows (`HEADER_SCAN_ROWS`, or up to
 * the given `headerRow`) and then `rows` data rows, and stops (an XLSX stream is abandoned,
 * never read whole). The column mapping is decided by the same code as a preview
 * (`findHeader`, `resolveColumns`), so what it shows is what the preview will use; when the
 * columns cannot be decided the reason is returned as `mappingError` (the rows are still
 * shown, so the admin can map the columns by hand) instead of thrown.
 *
 * Errors thrown: `ImportFileError` for a file that cannot be read at all (empty, legacy .xls,
 * unknown sheet…); `ImportOptionsError` for bad options.
 */
import { z } from 'zod';
import {
  ASSOCIATION_FIELDS,
  ColumnMapping,
  PARENT_FIELDS,
  columnLetter,
  headerMatches,
  headerTexts,
  resolveColumns,
  type ColumnLayout,
  type FieldSpec,
} from './columns.js';
import { cellDisplay, cellText } from './cells.js';
import { ImportFileError } from './errors.js';
import { openImportFile, type FileInfo, type SheetRow } from './read.js';
import { HEADER_SCAN_ROWS, ImportFileInput, ImportOptionsError, findHeader } from './service.js';

/** Most data rows an inspection returns. */
export const MAX_INSPECT_ROWS = 50;

export const InspectInput = z.strictObject({
  kind: z.enum(['parents', 'associations']),
  file: ImportFileInput,
  sheet: z.string().trim().min(1).max(200).optional(),
  /** 1-based header row (default: found among the top rows, as a preview does). */
  headerRow: z.number().int().min(1).optional(),
  /** Associations only: the file has a header row (default true). */
  hasHeaders: z.boolean().default(true),
  /** Explicit mapping: field → header text or 1-based column number. */
  columns: ColumnMapping.optional(),
  /** Parents: the Role / School columns become required (as in the preview). */
  roleFromFile: z.boolean().default(false),
  schoolFromFile: z.boolean().default(false),
  /** Data rows to return (default 10). */
  rows: z.number().int().min(1).max(MAX_INSPECT_ROWS).default(10),
  maxBytes: z.number().int().min(1).optional(),
});
export type InspectInput = z.input<typeof InspectInput>;

/** One field of the import and the column the importer would read it from. */
export interface InspectedField {
  key: string;
  label: string;
  /** The preview refuses the file without this column. */
  required: boolean;
  /** 1-based column number; absent when no column was found (or the mapping failed). */
  column?: number | undefined;
  /** That column's header text (or "column C" without a header row). */
  header?: string | undefined;
}

/** What `inspectImportFile` found. */
export interface ImportInspection {
  kind: 'parents' | 'associations';
  file: FileInfo;
  /** 1-based header row (the one found or given); absent for a file without headers. */
  headerRow?: number | undefined;
  /** Every column of the top rows: 1-based number, letter, header text ('' when none). */
  columns: { column: number; letter: string; header: string }[];
  fields: InspectedField[];
  /** Why the importer cannot decide the columns (the preview would refuse the file so). */
  mappingError?: string | undefined;
  /** The first data rows (after the header): row number and each cell as displayed. */
  rows: { row: number; cells: string[] }[];
}

const isBlank = (row: SheetRow) =>
  row.cells.every(c => c.t === 'empty' || (c.t === 'text' && c.text.trim() === ''));

const shown = (row: SheetRow) =>
  row.cells.map(c => {
    const t = cellText(c, 'text');
    return t.ok ? t.text : cellDisplay(c);
  });

/**
 * Read the top of an import file and say how a preview with these options would read it.
 * See the module comment. Stores nothing.
 */
export async function inspectImportFile(input: InspectInput): Promise<ImportInspection> {
  const parsed = InspectInput.safeParse(input);
  if (!parsed.success)
    throw new ImportOptionsError(
      'invalid import inspection request',
      parsed.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  const o = parsed.data;
  if (!o.hasHeaders && o.headerRow !== undefined)
    throw new ImportOptionsError('invalid import inspection request', [
      'headerRow: a header row was given for a file without headers (hasHeaders false)',
    ]);
  const fileName = o.file.name;
  const fields: readonly FieldSpec[] = o.kind === 'parents' ? PARENT_FIELDS : ASSOCIATION_FIELDS;
  const required: string[] =
    o.kind === 'parents'
      ? [
          'firstName',
          'lastName',
          'uniqueId',
          ...(o.roleFromFile ? ['role'] : []),
          ...(o.schoolFromFile ? ['school'] : []),
        ]
      : ['parentUniqueId', 'studentUniqueId'];
  const hasHeaders = o.kind === 'parents' ? true : o.hasHeaders;
  const resolve = (texts: string[] | undefined): ColumnLayout<string> => {
    const layout = resolveColumns(
      fileName,
      fields,
      texts,
      o.columns,
      required,
      texts ? [] : ['parentUniqueId', 'studentUniqueId'],
    );
    if (o.kind === 'parents' && !layout.email && !layout.username)
      throw new ImportFileError(
        fileName,
        'the file needs an Email or a Username column (or both); rename the column or map it explicitly',
      );
    return layout;
  };

  // Read the top of the file only.
  const opened = openImportFile(o.file, { sheet: o.sheet, maxBytes: o.maxBytes });
  const top: SheetRow[] = [];
  const scanRows = hasHeaders ? (o.headerRow ?? 0) + HEADER_SCAN_ROWS : 0;
  for await (const row of opened.rows) {
    if (isBlank(row)) continue;
    top.push(row);
    if (top.length >= scanRows + o.rows) break;
  }
  if (top.length === 0) throw new ImportFileError(fileName, 'the file has no rows');

  let header: SheetRow | undefined;
  let layout: ColumnLayout<string> | undefined;
  let mappingError: string | undefined;
  const failed = (err: unknown) => {
    if (!(err instanceof ImportFileError)) throw err;
    mappingError = err.message;
  };
  if (!hasHeaders) {
    try {
      layout = resolve(undefined);
    } catch (err) {
      failed(err);
    }
  } else if (o.headerRow !== undefined) {
    header = top.find(r => r.row === o.headerRow);
    if (!header) mappingError = `${fileName}: the header row ${o.headerRow} is blank or missing`;
    else
      try {
        layout = resolve(headerTexts(header));
      } catch (err) {
        failed(err);
      }
  } else {
    const candidates = top.slice(0, HEADER_SCAN_ROWS);
    try {
      const found = findHeader(fileName, fields, candidates, texts => resolve(texts));
      header = found.row;
      layout = found.layout;
    } catch (err) {
      failed(err);
      // Show the rows under the row that names the most fields (else the first row).
      let best = 0;
      for (const row of candidates) {
        const n = headerMatches(fields, headerTexts(row)).length;
        if (n > best) {
          best = n;
          header = row;
        }
      }
      header ??= candidates[0];
    }
  }

  const data = (header ? top.filter(r => r.row > header.row) : top).slice(0, o.rows);
  const headerCells = header ? headerTexts(header) : [];
  const width = Math.max(headerCells.length, ...data.map(r => r.cells.length));
  const columns = Array.from({ length: width }, (_, i) => ({
    column: i + 1,
    letter: columnLetter(i),
    header: headerCells[i]?.trim() ?? '',
  }));
  const inspected: InspectedField[] = fields.map(f => {
    const at = layout?.[f.key];
    const out: InspectedField = {
      key: f.key,
      label: f.label,
      required: required.includes(f.key),
    };
    if (at) {
      out.column = at.index + 1;
      out.header = at.header;
    }
    return out;
  });
  if (header) {
    opened.info.headerRow = header.row;
    opened.info.rowsAboveHeader = top.filter(r => r.row < header.row).length;
  }
  return {
    kind: o.kind,
    file: opened.info,
    ...(header ? { headerRow: header.row } : {}),
    columns,
    fields: inspected,
    ...(mappingError !== undefined ? { mappingError } : {}),
    rows: data.map(r => {
      const cells = shown(r);
      return { row: r.row, cells: Array.from({ length: width }, (_, i) => cells[i] ?? '') };
    }),
  };
}
