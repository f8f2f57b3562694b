/**
 * Admin imports as service functions (used by the CLI and mounted by the HTTP API):
 *
 * - `previewParentImport` / `previewAssociationImport`: read the file, plan against the store
 *   and store the plan as a preview with an id (nothing else is written);
 * - `confirmImport`: apply exactly the stored plan, unless the data it was planned on changed
 *   since (then nothing is applied, a new preview is made from the same rows and returned —
 *   design invariant 12);
 * - `getImportPreview`, `listImportIssues`, `importReportCsv`: read a preview back, page its
 *   row issues, download them as CSV.
 *
 * Inputs are validated with the zod schemas exported here. Errors: `ImportFileError` (the
 * file cannot be used), `ImportOptionsError` (the options do not fit the district),
 * `ImportPreviewError` (confirm of a missing/expired/replaced preview), `ConfigError`
 * (unknown district). A bad file or bad options never store anything.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { AppContext } from '../app.js';
import type { DistrictConfig } from '../config/district.js';
import { GuardianSyncError } from '../errors.js';
import { kickChanges } from '../jobs/changes.js';
import type { ChangeContext } from '../models/changes/types.js';
import { importRepository } from '../models/imports/index.js';
import type {
  ImportKind,
  ImportRepository,
  PreviewStatus,
  StoredPreview,
} from '../models/imports/types.js';
import {
  associationImportKeys,
  associationStateFingerprint,
  associationWrite,
  fingerprint,
  findRole,
  parentImportKeys,
  parentImportWrite,
  parentStateFingerprint,
  planAssociationImport,
  planFingerprint,
  planParentImport,
  resolveSchool,
  type AssociationImportPlan,
  type AssociationImportRecord,
  type MergedRow,
  type ParentImportPlan,
  type ParentImportRecord,
  type RowIssue,
} from '../reconcile/import-plan.js';
import {
  ASSOCIATION_FIELDS,
  ColumnMapping,
  PARENT_FIELDS,
  columnLetter,
  headerMatches,
  headerTexts,
  normalizeHeader,
  resolveColumns,
  toRecord,
  type ColumnLayout,
  type FieldCheck,
  type AssociationField,
  type FieldSpec,
  type ParentField,
  type RowRecord,
} from './columns.js';
import { ImportFileError, ImportPreviewError } from './errors.js';
import { cellDisplay, cellText } from './cells.js';
import { openImportFile, type FileInfo, type SheetRow } from './read.js';
import { issuesCsv } from './report.js';
import { effectiveDistrictRoles } from './roles.js';

// --- inputs ----------------------------------------------------------------------------

/** The options do not fit the district (unknown fixed role or school, bad value table…). */
export class ImportOptionsError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    message: string,
    /** One line per problem. */
    readonly problems: string[] = [],
  ) {
    super(problems.length ? `${message}\n  - ${problems.join('\n  - ')}` : message);
  }
}

/** `schema.parse(value)`, with zod issues turned into an `ImportOptionsError` naming each key. */
function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ImportOptionsError(
    `invalid ${what}`,
    r.error.issues.map(i => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`),
  );
}

const Sheet = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .describe('XLSX sheet name (default: the first sheet)');

/** `only` option: column (header text or 1-based number) → the values a row may have there. */
export const OnlyFilter = z
  .record(z.string().trim().min(1), z.array(z.string().trim().min(1)).min(1))
  .describe(
    'keep only rows whose column (header text or 1-based number) has one of these values (case-insensitive); the others are left out, counted and listed',
  );
export type OnlyFilter = z.infer<typeof OnlyFilter>;

const HeaderRow = z
  .number()
  .int()
  .min(1)
  .describe(
    'the 1-based row of the header (default: the first of the top rows that names the columns)',
  );

/** Options of a parent account import (defaults: role Parent, no school, all switches off). */
export const ParentImportOptions = z
  .strictObject({
    sheet: Sheet.optional(),
    columns: ColumnMapping.optional().describe(
      'explicit column mapping: field (firstName, lastName, uniqueId, username, email, role, school) → header text or 1-based column number',
    ),
    role: z.string().trim().min(1).default('Parent').describe('fixed role for every row'),
    roleFromFile: z.boolean().default(false).describe("take each row's role from the Role column"),
    school: z
      .string()
      .trim()
      .min(1)
      .optional()
      .describe('fixed school (sourcedId or name) for every row'),
    schoolFromFile: z
      .boolean()
      .default(false)
      .describe("take each row's school from the School column"),
    schoolValues: z
      .record(z.string().trim().min(1), z.string().trim().min(1))
      .default({})
      .describe('value table: School value in the file → school sourcedId'),
    dontUpdateExisting: z.boolean().default(false),
    dontAllowDuplicates: z.boolean().default(false),
    sendActivationEmail: z.boolean().default(false),
    headerRow: HeaderRow.optional(),
    only: OnlyFilter.optional(),
  })
  .refine(o => !(o.school && o.schoolFromFile), {
    message: 'choose a fixed school or schoolFromFile, not both',
    path: ['school'],
  });
export type ParentImportOptions = z.infer<typeof ParentImportOptions>;

/** Options of an association import. */
export const AssociationImportOptions = z
  .strictObject({
    sheet: Sheet.optional(),
    columns: ColumnMapping.optional().describe(
      'explicit column mapping: parentUniqueId / studentUniqueId → header text or 1-based column number',
    ),
    hasHeaders: z.boolean().default(true).describe('the file has a header row'),
    headerRow: HeaderRow.optional(),
    only: OnlyFilter.optional(),
    clearExisting: z
      .boolean()
      .default(false)
      .describe("clear parent associations for the students in the file (replace with the file's)"),
  })
  .refine(o => o.hasHeaders || o.headerRow === undefined, {
    message: 'a header row was given for a file without headers (hasHeaders false)',
    path: ['headerRow'],
  });

export type AssociationImportOptions = z.infer<typeof AssociationImportOptions>;

/** Validate options of `kind` (throws `ImportOptionsError` naming each bad key). */
export function parseImportOptions(kind: 'parents', raw: unknown): ParentImportOptions;
export function parseImportOptions(kind: 'associations', raw: unknown): AssociationImportOptions;
export function parseImportOptions(
  kind: ImportKind,
  raw: unknown,
): ParentImportOptions | AssociationImportOptions {
  return kind === 'parents'
    ? parseInput(ParentImportOptions, raw, 'import options')
    : parseInput(AssociationImportOptions, raw, 'import options');
}

export const ImportFileInput = z.strictObject({
  name: z.string().trim().min(1).max(255),
  data: z.custom<Uint8Array>(v => v instanceof Uint8Array, 'file data must be bytes'),
});

const PreviewCommon = {
  districtId: z.string().min(1),
  file: ImportFileInput,
  /** Minutes until the preview expires (default 24 h, at most 7 days). */
  expiresInMinutes: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .default(24 * 60),
  /** Largest accepted file (bytes). */
  maxBytes: z.number().int().min(1).optional(),
};

export const ParentPreviewInput = z.strictObject({
  ...PreviewCommon,
  options: ParentImportOptions.default({
    role: 'Parent',
    roleFromFile: false,
    schoolFromFile: false,
    schoolValues: {},
    dontUpdateExisting: false,
    dontAllowDuplicates: false,
    sendActivationEmail: false,
  }),
});
export type ParentPreviewInput = z.input<typeof ParentPreviewInput>;

export const AssociationPreviewInput = z.strictObject({
  ...PreviewCommon,
  options: AssociationImportOptions.default({ hasHeaders: true, clearExisting: false }),
});
export type AssociationPreviewInput = z.input<typeof AssociationPreviewInput>;

export const PreviewRef = z.strictObject({
  districtId: z.string().min(1),
  previewId: z.string().regex(/^imp_[0-9a-f]{24}$/, 'not an import preview id'),
});
export type PreviewRef = z.infer<typeof PreviewRef>;

/** Callbacks for long reads (the CLI's progress bar). */
export interface ImportHooks {
  /** Called every 1000 rows read with the number of rows read so far. */
  onProgress?: (rowsRead: number) => void;
  /** Clock (tests). */
  now?: () => Date;
}

export type ImportContext = Pick<AppContext, 'store' | 'district'>;

// --- outputs ---------------------------------------------------------------------------

/** How many of each kind of item a preview shows in `samples`. */
export const SAMPLE_SIZE = 20;
/** How many issues a preview carries inline (all of them: `listImportIssues`, the CSV report). */
export const PREVIEW_ISSUES = 200;

/** A preview as shown to the admin. */
export interface ImportPreview {
  previewId: string;
  districtId: string;
  kind: ImportKind;
  status: PreviewStatus;
  createdAt: string;
  expiresAt: string;
  appliedAt?: string | undefined;
  supersededBy?: string | undefined;
  file: FileInfo;
  options: ParentImportOptions | AssociationImportOptions;
  /** Field → the column (header) it was read from. */
  columns: Record<string, string>;
  rows: { data: number; used: number; withErrors: number; withWarnings: number };
  /** Per action, e.g. `{ create: 10, update: 2, unchanged: 5 }`. */
  counts: Record<string, number>;
  /** The first `SAMPLE_SIZE` items of each action. */
  samples: Record<string, Record<string, unknown>[]>;
  issueCount: { errors: number; warnings: number };
  /** The first `PREVIEW_ISSUES` issues by row. */
  issues: RowIssue[];
  fingerprints: { input: string; state: string; plan: string };
  /** Milliseconds per preview step: read the file, load the state, plan, store the preview. */
  timings: { readMs: number; loadMs: number; planMs: number; saveMs: number };
  /** The preview this one replaced (confirm found the data changed). */
  supersedes?: string | undefined;
}

/** Activation emails a parent import confirm asked for (see `ConfirmResult`). */
export interface ActivationRequest {
  requested: number;
  noEmail: string[];
}

export type ConfirmResult =
  | {
      status: 'applied';
      previewId: string;
      kind: ImportKind;
      appliedAt: string;
      counts: Record<string, number>;
      /** Rows/documents written. */
      writes: number;
      /**
       * Parent imports with "send activation email": what this confirm asked for. Confirm
       * sends nothing itself: the change-log consumer (src/jobs/changes.ts) queues one email
       * per account from this import's `parent create` entries (cause `import`, `notify`), so
       * a process that dies right after the confirm loses none. `requested`: new accounts
       * with an email; `noEmail`: ids of new accounts without one (never emailed).
       */
      activationEmails?: ActivationRequest | undefined;
    }
  | {
      /** Confirmed before: nothing applied again; the first confirm's result. */
      status: 'already-applied';
      previewId: string;
      kind: ImportKind;
      appliedAt: string;
      result: Record<string, unknown>;
    }
  | {
      /** The data changed since the preview: nothing applied; confirm `preview` instead. */
      status: 'changed';
      previewId: string;
      message: string;
      preview: ImportPreview;
    };

interface PreviewMeta extends Omit<
  ImportPreview,
  | 'previewId'
  | 'districtId'
  | 'kind'
  | 'status'
  | 'createdAt'
  | 'expiresAt'
  | 'appliedAt'
  | 'supersededBy'
  | 'issues'
> {
  expiresInMinutes: number;
}

// --- reading files ---------------------------------------------------------------------

const MAX_ID = 100;
const MAX_NAME = 200;
const Email = z.email();

const idCheck: FieldCheck = t =>
  t.length > MAX_ID
    ? `identifier is longer than ${MAX_ID} characters`
    : /\p{Cc}/u.test(t)
      ? 'identifier contains control characters'
      : undefined;
const nameCheck: FieldCheck = t =>
  t.length > MAX_NAME ? `longer than ${MAX_NAME} characters` : undefined;

interface ReadResult<K extends string> {
  info: FileInfo;
  layout: ColumnLayout<K>;
  records: RowRecord<K>[];
  /** Rows with errors: the fields that were readable. */
  badRecords: RowRecord<K>[];
  /** Row → identifier fields read from a bare Excel number (`isBareNumber`). */
  numeric: Map<number, K[]>;
  issues: RowIssue[];
  dataRows: number;
  /** Rows the `only` filter left out (also listed in `issues` as warnings). */
  excluded: ExcludedRow[];
}

/** A row left out by the `only` option. */
export interface ExcludedRow {
  row: number;
  column: string;
  value: string;
}

/** How many rows from the top are searched for the header row (when not given). */
export const HEADER_SCAN_ROWS = 10;

/**
 * Find the header row among the first non-blank rows: the first whose texts resolve the
 * columns. When none does, the error is the one of the row naming the most fields, prefixed
 * with that row's number ("row 3 looks like the header: …").
 */
export function findHeader<K extends string>(
  fileName: string,
  fields: readonly FieldSpec<K>[],
  candidates: SheetRow[],
  resolve: (texts: string[]) => ColumnLayout<K>,
): { row: SheetRow; layout: ColumnLayout<K> } {
  let best: { row: SheetRow; matches: string[]; err: unknown } | undefined;
  for (const row of candidates) {
    const texts = headerTexts(row);
    try {
      return { row, layout: resolve(texts) };
    } catch (err) {
      const matches = headerMatches(fields, texts);
      if (!best || matches.length > best.matches.length) best = { row, matches, err };
    }
  }
  if (!best) throw new ImportFileError(fileName, 'the file has no rows');
  const first = candidates[0];
  if (best.row === first || best.matches.length === 0) throw best.err;
  const detail =
    best.err instanceof ImportFileError
      ? best.err.message.slice(fileName.length + 2)
      : String(best.err);
  throw new ImportFileError(
    fileName,
    `row ${best.row.row} looks like the header (it names ${best.matches.join(', ')}), but ${detail}`,
  );
}

function resolveOnly(
  fileName: string,
  only: OnlyFilter | undefined,
  headers: string[] | undefined,
): { index: number; header: string; values: Set<string>; shown: string }[] {
  const out: { index: number; header: string; values: Set<string>; shown: string }[] = [];
  for (const [target, values] of Object.entries(only ?? {})) {
    let index: number;
    if (/^\d+$/.test(target)) index = Number(target) - 1;
    else {
      const want = normalizeHeader(target);
      const hits = (headers ?? []).flatMap((h, i) => (normalizeHeader(h) === want ? [i] : []));
      if (hits.length !== 1)
        throw new ImportFileError(
          fileName,
          hits.length === 0
            ? `only: no column is headed "${target}" (headers: ${(headers ?? []).map(h => `"${h}"`).join(', ') || 'none'})`
            : `only: ${hits.length} columns are headed "${target}"; name the column by number`,
        );
      index = hits[0] ?? 0;
    }
    out.push({
      index,
      header: headers?.[index]?.trim() || `column ${columnLetter(index)}`,
      values: new Set(values.map(v => v.toLowerCase())),
      shown: values.join(', '),
    });
  }
  return out;
}

async function readRecords<K extends string>(
  file: { name: string; data: Uint8Array },
  fields: readonly FieldSpec<K>[],
  o: {
    sheet?: string | undefined;
    maxBytes?: number | undefined;
    columns?: ColumnMapping | undefined;
    hasHeaders: boolean;
    /** 1-based row of the header; default: found among the first `HEADER_SCAN_ROWS` rows. */
    headerRow?: number | undefined;
    only?: OnlyFilter | undefined;
    requiredColumns: readonly K[];
    requiredValues: readonly K[];
    defaultOrder?: readonly K[];
    checks: Partial<Record<K, FieldCheck>>;
    validateLayout?: (layout: ColumnLayout<K>) => void;
  },
  hooks: ImportHooks,
): Promise<ReadResult<K>> {
  const opened = openImportFile(file, { sheet: o.sheet, maxBytes: o.maxBytes });
  const issues: RowIssue[] = [];
  const records: RowRecord<K>[] = [];
  const badRecords: RowRecord<K>[] = [];
  const numeric = new Map<number, K[]>();
  const excluded: ExcludedRow[] = [];
  let layout: ColumnLayout<K> | undefined;
  let filters: ReturnType<typeof resolveOnly> = [];
  let read = 0;
  let dataRows = 0;
  let aboveHeader = 0;
  /** Non-blank rows read while looking for the header. */
  const pending: SheetRow[] = [];
  const isBlank = (row: SheetRow) => row.cells.every(c => c.t === 'empty');
  const resolve = (texts: string[] | undefined) => {
    const l = resolveColumns(
      file.name,
      fields,
      texts,
      o.columns,
      o.requiredColumns,
      texts ? [] : o.defaultOrder,
    );
    o.validateLayout?.(l);
    return l;
  };
  const useHeader = (header: SheetRow, l: ColumnLayout<K>) => {
    layout = l;
    const texts = headerTexts(header);
    filters = resolveOnly(file.name, o.only, texts);
    opened.info.headerRow = header.row;
    opened.info.rowsAboveHeader = aboveHeader;
  };
  const take = (row: SheetRow, l: ColumnLayout<K>) => {
    for (const f of filters) {
      const cell = row.cells[f.index] ?? { t: 'empty' as const };
      const t = cellText(cell, 'text');
      const value = t.ok ? t.text : cellDisplay(cell);
      if (isBlank(row) || f.values.has(value.trim().toLowerCase())) continue;
      excluded.push({ row: row.row, column: f.header, value });
      issues.push({
        file: file.name,
        row: row.row,
        column: f.header,
        value,
        reason: `left out: ${f.header} is ${value ? `"${value}"` : 'blank'}, not one of ${f.shown} (only)`,
        severity: 'warning',
      });
      return;
    }
    const rec = toRecord(file.name, fields, l, row, o.requiredValues, o.checks, issues);
    if (!rec) return;
    dataRows++;
    if (rec.numeric.length > 0) numeric.set(row.row, rec.numeric);
    if (rec.ok) records.push(rec.record);
    else badRecords.push(rec.record);
  };
  for await (const row of opened.rows) {
    read++;
    if (read % 1000 === 0) hooks.onProgress?.(read);
    if (layout) {
      take(row, layout);
      continue;
    }
    if (!o.hasHeaders) {
      const l = resolve(undefined);
      layout = l;
      filters = resolveOnly(file.name, o.only, undefined);
      take(row, l);
      continue;
    }
    if (o.headerRow !== undefined) {
      if (row.row < o.headerRow) {
        if (!isBlank(row)) aboveHeader++;
        continue;
      }
      // (XLSX streams leave blank rows out: a later row means the header row is blank)
      if (isBlank(row) || row.row !== o.headerRow)
        throw new ImportFileError(file.name, `the header row ${o.headerRow} is blank`);
      useHeader(row, resolve(headerTexts(row)));
      continue;
    }
    if (isBlank(row)) continue;
    pending.push(row);
    if (pending.length < HEADER_SCAN_ROWS) continue;
    drain();
  }
  if (!layout && pending.length > 0) drain();
  hooks.onProgress?.(read);
  if (!layout)
    throw new ImportFileError(
      file.name,
      o.headerRow !== undefined
        ? `the file has no row ${o.headerRow} (the header row asked for)`
        : 'the file has no rows',
    );
  if (dataRows === 0)
    throw new ImportFileError(
      file.name,
      excluded.length > 0
        ? `every data row was left out by the only filter (${excluded.length} rows)`
        : 'the file has no data rows (only a header)',
    );
  return {
    info: opened.info,
    layout,
    records,
    badRecords,
    numeric,
    issues,
    dataRows,
    excluded,
  };

  /** Pick the header among the pending rows; the rows after it are data. */
  function drain() {
    const found = findHeader(file.name, fields, pending, texts => resolve(texts));
    const at = pending.indexOf(found.row);
    aboveHeader = at;
    useHeader(found.row, found.layout);
    for (const row of pending.slice(at + 1)) take(row, found.layout);
    pending.length = 0;
  }
}

/**
 * Drop the raw rows of a read file once they are turned into import records, so a large
 * preview does not hold every row twice while it is planned and saved (the records, issues
 * and exclusions stay).
 */
function releaseRows<K extends string>(read: ReadResult<K>): void {
  read.records.length = 0;
  read.badRecords.length = 0;
  read.numeric.clear();
}

function columnsOf<K extends string>(layout: ColumnLayout<K>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries<{ header: string } | undefined>(layout))
    if (v) out[k] = v.header;
  return out;
}

// --- parents ---------------------------------------------------------------------------

interface ParentContext {
  district: DistrictConfig;
  roles: string[];
}

/** Check options against the district; returns the role/school sources for the planner. */
function checkParentOptions(
  district: DistrictConfig,
  options: ParentImportOptions,
  roles: string[],
  schools: { sourcedId: string; name: string }[],
): void {
  const problems: string[] = [];
  if (!options.roleFromFile && !findRole(roles, options.role))
    problems.push(
      `role "${options.role}" does not exist in district ${district.id} (roles: ${roles.join(', ')})`,
    );
  if (options.school && !resolveSchool(options.school, schools))
    problems.push(
      `school "${options.school}" is not the id or name of a school of district ${district.id}`,
    );
  for (const [from, to] of Object.entries(options.schoolValues)) {
    if (!schools.some(s => s.sourcedId === to))
      problems.push(
        `value table: "${from}" maps to "${to}", which is not a school id of district ${district.id}`,
      );
  }
  if (Object.keys(options.schoolValues).length > 0 && !options.schoolFromFile)
    problems.push('a school value table needs schoolFromFile');
  if (options.sendActivationEmail && !district.notifications)
    problems.push(
      `district ${district.id} has no notifications settings, so activation emails cannot be sent`,
    );
  if (problems.length)
    throw new ImportOptionsError('the import options do not fit the district', problems);
}

function planParents(
  pc: ParentContext,
  fileName: string,
  columns: Record<string, string>,
  options: ParentImportOptions,
  records: ParentImportRecord[],
  state: Awaited<ReturnType<ImportRepository['loadParentImportState']>>,
) {
  return planParentImport(records, state, {
    districtId: pc.district.id,
    fileName,
    columns,
    roles: options.roleFromFile ? { source: 'file' } : { source: 'fixed', role: options.role },
    knownRoles: pc.roles,
    schools: options.schoolFromFile
      ? { source: 'file', valueTable: options.schoolValues }
      : options.school
        ? { source: 'fixed', school: options.school }
        : { source: 'none' },
    dontUpdateExisting: options.dontUpdateExisting,
    dontAllowDuplicates: options.dontAllowDuplicates,
    sendActivationEmail: options.sendActivationEmail,
  });
}

function parentCounts(plan: ParentImportPlan, merged: MergedRow[]): Record<string, number> {
  return {
    create: plan.creates.length,
    update: plan.updates.filter(u => u.action === 'update').length,
    reactivate: plan.updates.filter(u => u.action === 'reactivate').length,
    unchanged: plan.skips.filter(s => s.reason === 'unchanged').length,
    notUpdated: plan.skips.filter(s => s.reason === 'dont-update-existing').length,
    activationEmail: plan.activationParentIds.length,
    merged: merged.length,
  };
}

function parentSamples(
  plan: ParentImportPlan,
  merged: MergedRow[],
): Record<string, Record<string, unknown>[]> {
  const take = <T>(xs: T[]) => xs.slice(0, SAMPLE_SIZE);
  return {
    create: take(plan.creates).map(c => ({
      rows: c.rows,
      uniqueId: c.account.uniqueId,
      givenName: c.account.givenName,
      familyName: c.account.familyName,
      email: c.account.email,
      username: c.profile.username,
      role: c.account.role,
      schools: c.profile.schoolSourcedIds,
    })),
    update: take(plan.updates.filter(u => u.action === 'update')).map(u => ({
      rows: u.rows,
      uniqueId: u.uniqueId,
      parentId: u.parentId,
      changes: u.changes,
    })),
    reactivate: take(plan.updates.filter(u => u.action === 'reactivate')).map(u => ({
      rows: u.rows,
      uniqueId: u.uniqueId,
      parentId: u.parentId,
      changes: u.changes,
    })),
    unchanged: take(plan.skips.filter(s => s.reason === 'unchanged')).map(s => ({
      rows: s.rows,
      uniqueId: s.uniqueId,
      parentId: s.parentId,
    })),
    notUpdated: take(plan.skips.filter(s => s.reason === 'dont-update-existing')).map(s => ({
      rows: s.rows,
      uniqueId: s.uniqueId,
      parentId: s.parentId,
      changes: s.changes,
    })),
    merged: take(merged).map(m => ({ ...m })),
  };
}

function parentPlanParts(plan: ParentImportPlan): Record<string, unknown[]> {
  return {
    'plan.creates': plan.creates,
    'plan.updates': plan.updates,
    'plan.skips': plan.skips,
    'plan.activation': plan.activationParentIds,
  };
}

async function loadParentPlan(repo: ImportRepository, id: string): Promise<ParentImportPlan> {
  return {
    creates: (await repo.getPreviewPart(id, 'plan.creates')) as ParentImportPlan['creates'],
    updates: (await repo.getPreviewPart(id, 'plan.updates')) as ParentImportPlan['updates'],
    skips: (await repo.getPreviewPart(id, 'plan.skips')) as ParentImportPlan['skips'],
    activationParentIds: (await repo.getPreviewPart(id, 'plan.activation')) as string[],
  };
}

/**
 * The usable parent records of a read file. Multi-row layouts (PowerSchool's contacts
 * template, Finalsite exports): a row with both names blank whose Unique ID has a named row
 * elsewhere in the file is a continuation row of that person — its blank fields are taken
 * from the named row and it is merged by the planner (listed as `merged`, no issue). Any
 * other blank name is a row error, as is a row without Email and Username.
 */
function parentRecords(
  fileName: string,
  columns: Record<string, string>,
  read: ReadResult<ParentField>,
): ParentImportRecord[] {
  const named = new Map<string, RowRecord<ParentField>>();
  for (const r of read.records)
    if (r.uniqueId && r.firstName && r.lastName && !named.has(r.uniqueId)) named.set(r.uniqueId, r);
  const records: ParentImportRecord[] = [];
  const error = (row: number, column: string | undefined, reason: string) =>
    read.issues.push({
      file: fileName,
      row,
      column: column ?? '',
      value: '',
      reason,
      severity: 'error',
    });
  for (const r of read.records) {
    const uniqueId = r.uniqueId ?? '';
    let rec = r;
    let continuation = false;
    if (!r.firstName || !r.lastName) {
      const first = named.get(uniqueId);
      if (!r.firstName && !r.lastName && first) {
        continuation = true;
        rec = { ...r };
        for (const k of ['firstName', 'lastName', 'email', 'username', 'role', 'school'] as const)
          if (rec[k] === undefined && first[k] !== undefined) rec[k] = first[k];
      } else {
        if (!r.firstName) error(r.row, columns.firstName, 'First Name is blank');
        if (!r.lastName) error(r.row, columns.lastName, 'Last Name is blank');
        continue;
      }
    }
    if (!rec.email && !rec.username) {
      error(r.row, columns.email ?? columns.username, 'the row needs an Email or a Username');
      continue;
    }
    records.push({
      row: r.row,
      uniqueId,
      firstName: rec.firstName ?? '',
      lastName: rec.lastName ?? '',
      email: rec.email,
      username: rec.username,
      role: rec.role,
      school: rec.school,
      ...(continuation ? { continuation: true } : {}),
      ...(read.numeric.get(r.row)?.includes('uniqueId') ? { numericId: true } : {}),
    });
  }
  // rows with other errors still report blank names, as before
  const reportedCells = new Set(read.issues.map(i => `${i.row}\u0000${i.column}`));
  for (const r of read.badRecords) {
    if (r.uniqueId && named.has(r.uniqueId) && !r.firstName && !r.lastName) continue;
    const reported = (column: string | undefined) =>
      column !== undefined && reportedCells.has(`${r.row}\u0000${column}`);
    if (!r.firstName && !reported(columns.firstName))
      error(r.row, columns.firstName, 'First Name is blank');
    if (!r.lastName && !reported(columns.lastName))
      error(r.row, columns.lastName, 'Last Name is blank');
  }
  return records;
}

/**
 * Preview a parent account import: read the file, match every row (invariant 7), store the
 * plan as a preview. Writes nothing but the preview.
 * Throws `ImportFileError`, `ImportOptionsError`, `ConfigError` (unknown district), zod
 * errors for malformed input.
 */
export async function previewParentImport(
  ctx: ImportContext,
  input: ParentPreviewInput,
  hooks: ImportHooks = {},
): Promise<ImportPreview> {
  const req = parseInput(ParentPreviewInput, input, 'parent import request');
  const district = ctx.district(req.districtId);
  const repo = await importRepository(ctx.store);
  const roles = await effectiveDistrictRoles(ctx.store, district);
  const schools = await repo.listSchools(district.id);
  const options = req.options;
  checkParentOptions(district, options, roles, schools);

  const required: ('firstName' | 'lastName' | 'uniqueId' | 'role' | 'school')[] = [
    'firstName',
    'lastName',
    'uniqueId',
  ];
  if (options.roleFromFile) required.push('role');
  if (options.schoolFromFile) required.push('school');
  const t0 = performance.now();
  const read = await readRecords(
    req.file,
    PARENT_FIELDS,
    {
      sheet: options.sheet,
      maxBytes: req.maxBytes,
      columns: options.columns,
      hasHeaders: true,
      headerRow: options.headerRow,
      only: options.only,
      requiredColumns: required,
      // names are checked below: a continuation row (multi-row layouts) has none
      requiredValues: ['uniqueId'],
      checks: {
        uniqueId: idCheck,
        firstName: nameCheck,
        lastName: nameCheck,
        email: t => (Email.safeParse(t).success ? undefined : 'not a valid email address'),
        username: t =>
          /\s/.test(t)
            ? 'username must not contain spaces'
            : t.length > MAX_ID
              ? `username is longer than ${MAX_ID} characters`
              : undefined,
      },
      validateLayout: layout => {
        if (!layout.email && !layout.username)
          throw new ImportFileError(
            req.file.name,
            'the file needs an Email or a Username column (or both); rename the column or map it explicitly',
          );
      },
    },
    hooks,
  );
  const columns = columnsOf(read.layout);
  const records = parentRecords(req.file.name, columns, read);
  releaseRows(read);
  const pc: ParentContext = { district, roles };
  const t1 = performance.now();
  const state = await repo.loadParentImportState(district.id, parentImportKeys(records));
  const t2 = performance.now();
  const { plan, issues, merged } = planParents(pc, req.file.name, columns, options, records, state);
  return savePreview(repo, {
    kind: 'parents',
    districtId: district.id,
    info: read.info,
    options,
    columns,
    expiresInMinutes: req.expiresInMinutes,
    records,
    fileIssues: read.issues,
    excluded: read.excluded,
    planIssues: issues,
    dataRows: read.dataRows,
    counts: parentCounts(plan, merged),
    samples: parentSamples(plan, merged),
    planParts: parentPlanParts(plan),
    extraParts: { merged },
    planFingerprint: planFingerprint(plan),
    stateFingerprint: parentStateFingerprint(state, roles),
    now: hooks.now?.() ?? new Date(),
    // last: planning time includes the fingerprints, counts and samples above
    timings: stepTimings(t0, t1, t2),
  });
}

// --- associations ----------------------------------------------------------------------

function associationCounts(
  plan: AssociationImportPlan,
  merged: MergedRow[],
): Record<string, number> {
  return {
    add: plan.adds.length,
    reactivate: plan.reactivations.length,
    unchanged: plan.unchanged.length,
    remove: plan.removals.length,
    keptSis: plan.keptSis.length,
    notCleared: plan.notCleared.length,
    merged: merged.length,
  };
}

function associationSamples(
  plan: AssociationImportPlan,
  merged: MergedRow[],
): Record<string, Record<string, unknown>[]> {
  const take = <T>(xs: T[]) => xs.slice(0, SAMPLE_SIZE);
  const link = (l: AssociationImportPlan['adds'][number]) => ({
    row: l.row,
    parentUniqueId: l.parentUniqueId,
    studentUniqueId: l.studentUniqueId,
  });
  const removal = (r: AssociationImportPlan['removals'][number]) => ({
    parentUniqueId: r.parentUniqueId,
    parentId: r.parentId,
    studentUniqueId: r.studentUniqueId,
    origin: r.origin,
  });
  return {
    add: take(plan.adds).map(link),
    reactivate: take(plan.reactivations).map(link),
    unchanged: take(plan.unchanged).map(link),
    remove: take(plan.removals).map(removal),
    keptSis: take(plan.keptSis).map(removal),
    notCleared: take(plan.notCleared).map(n => ({
      studentUniqueId: n.studentUniqueId,
      rows: n.rows,
    })),
    merged: take(merged).map(m => ({ row: m.row, into: m.into, parentUniqueId: m.uniqueId })),
  };
}

const ASSOCIATION_PLAN_PARTS = [
  'adds',
  'reactivations',
  'unchanged',
  'removals',
  'keptSis',
  'notCleared',
] as const;

async function loadAssociationPlan(
  repo: ImportRepository,
  id: string,
): Promise<AssociationImportPlan> {
  const plan: Record<string, unknown[]> = {};
  for (const p of ASSOCIATION_PLAN_PARTS) plan[p] = await repo.getPreviewPart(id, `plan.${p}`);
  return plan as unknown as AssociationImportPlan;
}

function associationPlanParts(plan: AssociationImportPlan): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const p of ASSOCIATION_PLAN_PARTS) out[`plan.${p}`] = plan[p];
  return out;
}

/**
 * The usable association records of a read file. Multi-row layouts (PowerSchool's contacts
 * template, Finalsite exports) give each extra student of a contact its own row and put
 * extra phones on rows without a student: a row without a student whose parent has a row
 * with a student is merged into that row (listed as `merged`, no issue); any other blank
 * student is a row error. Rows with errors are returned as `unusable` (their students keep
 * their links when clearing).
 */
function associationRecords(
  fileName: string,
  columns: Record<string, string>,
  read: ReadResult<AssociationField>,
): {
  records: AssociationImportRecord[];
  merged: MergedRow[];
  unusable: { row: number; studentUniqueId?: string | undefined }[];
} {
  const withStudent = new Map<string, number>();
  for (const r of [...read.records, ...read.badRecords].sort((a, b) => a.row - b.row))
    if (r.parentUniqueId && r.studentUniqueId && !withStudent.has(r.parentUniqueId))
      withStudent.set(r.parentUniqueId, r.row);
  const records: AssociationImportRecord[] = [];
  const merged: MergedRow[] = [];
  const unusable = read.badRecords.map(r => ({ row: r.row, studentUniqueId: r.studentUniqueId }));
  for (const r of read.records) {
    const parentUniqueId = r.parentUniqueId ?? '';
    if (!r.studentUniqueId) {
      const into = withStudent.get(parentUniqueId);
      if (into !== undefined) merged.push({ row: r.row, into, uniqueId: parentUniqueId });
      else {
        read.issues.push({
          file: fileName,
          row: r.row,
          column: columns.studentUniqueId ?? '',
          value: '',
          reason: 'Student Unique ID is blank',
          severity: 'error',
        });
        unusable.push({ row: r.row, studentUniqueId: undefined });
      }
      continue;
    }
    const numeric = read.numeric.get(r.row);
    records.push({
      row: r.row,
      parentUniqueId,
      studentUniqueId: r.studentUniqueId,
      ...(numeric ? { numeric: numeric.filter(k => k !== undefined) } : {}),
    });
  }
  // bad rows with a blank student report it, as before (unless merged above)
  for (const r of read.badRecords) {
    if (r.studentUniqueId || (r.parentUniqueId && withStudent.has(r.parentUniqueId))) continue;
    if (read.issues.some(i => i.row === r.row && i.column === columns.studentUniqueId)) continue;
    read.issues.push({
      file: fileName,
      row: r.row,
      column: columns.studentUniqueId ?? '',
      value: '',
      reason: 'Student Unique ID is blank',
      severity: 'error',
    });
  }
  return { records, merged, unusable };
}

/**
 * Preview a parent↔student association import. Writes nothing but the preview.
 * Throws `ImportFileError`, `ConfigError` (unknown district), zod errors for bad input.
 */
export async function previewAssociationImport(
  ctx: ImportContext,
  input: AssociationPreviewInput,
  hooks: ImportHooks = {},
): Promise<ImportPreview> {
  const req = parseInput(AssociationPreviewInput, input, 'association import request');
  const district = ctx.district(req.districtId);
  const repo = await importRepository(ctx.store);
  const options = req.options;
  const t0 = performance.now();
  const read = await readRecords(
    req.file,
    ASSOCIATION_FIELDS,
    {
      sheet: options.sheet,
      maxBytes: req.maxBytes,
      columns: options.columns,
      hasHeaders: options.hasHeaders,
      headerRow: options.headerRow,
      only: options.only,
      requiredColumns: ['parentUniqueId', 'studentUniqueId'],
      // a blank student is checked below: continuation rows (multi-row layouts) have none
      requiredValues: ['parentUniqueId'],
      defaultOrder: ['parentUniqueId', 'studentUniqueId'],
      checks: { parentUniqueId: idCheck, studentUniqueId: idCheck },
    },
    hooks,
  );
  const columns = columnsOf(read.layout);
  const { records, merged, unusable } = associationRecords(req.file.name, columns, read);
  releaseRows(read);
  const t1 = performance.now();
  const state = await repo.loadAssociationState(district.id, associationImportKeys(records));
  const t2 = performance.now();
  const { plan, issues } = planAssociationImport(records, state, {
    districtId: district.id,
    fileName: req.file.name,
    columns,
    clearExisting: options.clearExisting,
    unusableRows: unusable,
  });
  return savePreview(repo, {
    kind: 'associations',
    districtId: district.id,
    info: read.info,
    options,
    columns,
    expiresInMinutes: req.expiresInMinutes,
    records,
    fileIssues: read.issues,
    excluded: read.excluded,
    planIssues: issues,
    dataRows: read.dataRows,
    counts: associationCounts(plan, merged),
    samples: associationSamples(plan, merged),
    planParts: associationPlanParts(plan),
    extraParts: { unusable, merged },
    planFingerprint: planFingerprint(plan),
    stateFingerprint: associationStateFingerprint(state),
    now: hooks.now?.() ?? new Date(),
    // last: planning time includes the fingerprints, counts and samples above
    timings: stepTimings(t0, t1, t2),
  });
}

// --- storing and reading previews ------------------------------------------------------

interface NewPreview {
  kind: ImportKind;
  districtId: string;
  info: FileInfo;
  options: ParentImportOptions | AssociationImportOptions;
  columns: Record<string, string>;
  expiresInMinutes: number;
  records: unknown[];
  fileIssues: RowIssue[];
  planIssues: RowIssue[];
  dataRows: number;
  counts: Record<string, number>;
  samples: Record<string, Record<string, unknown>[]>;
  planParts: Record<string, unknown[]>;
  /** Further lists to keep with the preview (association import: `unusable` rows). */
  extraParts?: Record<string, unknown[]>;
  /** Rows the `only` option left out: counted (`excluded`), sampled and kept as a part. */
  excluded: ExcludedRow[];
  planFingerprint: string;
  stateFingerprint: string;
  now: Date;
  supersedes?: string;
  /** Read/load/plan milliseconds (saveMs is measured by `savePreview`). */
  timings: { readMs: number; loadMs: number; planMs: number };
}

/** Read (t0→t1), load (t1→t2) and plan (t2→now) milliseconds. */
function stepTimings(t0: number, t1: number, t2: number) {
  const now = performance.now();
  return {
    readMs: Math.round(t1 - t0),
    loadMs: Math.round(t2 - t1),
    planMs: Math.round(now - t2),
  };
}

function newPreviewId(): string {
  return `imp_${randomBytes(12).toString('hex')}`;
}

async function savePreview(repo: ImportRepository, p: NewPreview): Promise<ImportPreview> {
  const issues = [...p.fileIssues, ...p.planIssues].sort((a, b) => a.row - b.row);
  const errorRows = new Set(issues.filter(i => i.severity === 'error').map(i => i.row));
  // rows the `only` option left out are listed as warnings but are not data rows
  const left = new Set(p.excluded.map(e => e.row));
  const warningRows = new Set(
    issues.filter(i => i.severity === 'warning' && !left.has(i.row)).map(i => i.row),
  );
  const meta: PreviewMeta = {
    file: p.info,
    options: p.options,
    columns: p.columns,
    expiresInMinutes: p.expiresInMinutes,
    rows: {
      data: p.dataRows,
      used: Math.max(0, p.dataRows - errorRows.size),
      withErrors: errorRows.size,
      withWarnings: warningRows.size,
    },
    counts: { ...p.counts, excluded: p.excluded.length, errorRows: errorRows.size },
    samples: { ...p.samples, excluded: p.excluded.slice(0, SAMPLE_SIZE).map(e => ({ ...e })) },
    issueCount: {
      errors: issues.filter(i => i.severity === 'error').length,
      warnings: issues.filter(i => i.severity === 'warning').length,
    },
    fingerprints: {
      input: inputFingerprint(p.kind, p.info.sha256, p.options),
      state: p.stateFingerprint,
      plan: p.planFingerprint,
    },
    supersedes: p.supersedes,
    timings: { ...p.timings, saveMs: 0 },
  };
  const stored: StoredPreview = {
    id: newPreviewId(),
    districtId: p.districtId,
    kind: p.kind,
    status: 'previewed',
    createdAt: p.now.toISOString(),
    expiresAt: new Date(p.now.getTime() + p.expiresInMinutes * 60_000).toISOString(),
    meta: meta as unknown as Record<string, unknown>,
  };
  const tSave = performance.now();
  await repo.savePreview(
    stored,
    {
      records: p.records,
      fileIssues: p.fileIssues,
      issues,
      excluded: p.excluded,
      ...p.planParts,
      ...p.extraParts,
    },
    p.now,
  );
  meta.timings.saveMs = Math.round(performance.now() - tSave);
  return toView(stored, issues.slice(0, PREVIEW_ISSUES));
}

function toView(p: StoredPreview, issues: RowIssue[]): ImportPreview {
  const meta = p.meta as unknown as PreviewMeta;
  return {
    previewId: p.id,
    districtId: p.districtId,
    kind: p.kind,
    status: p.status,
    createdAt: p.createdAt,
    expiresAt: p.expiresAt,
    appliedAt: p.appliedAt,
    supersededBy: p.supersededBy,
    file: meta.file,
    options: meta.options,
    columns: meta.columns,
    rows: meta.rows,
    counts: meta.counts,
    samples: meta.samples,
    issueCount: meta.issueCount,
    issues,
    fingerprints: meta.fingerprints,
    timings: meta.timings,
    supersedes: meta.supersedes,
  };
}

/** Validate a preview reference; a malformed id is "not found" (it cannot exist). */
function parseRef(ref: PreviewRef): PreviewRef {
  const r = PreviewRef.safeParse(ref);
  if (r.success) return r.data;
  throw new ImportPreviewError(
    String((ref as { previewId?: unknown }).previewId),
    'not-found',
    'not an import preview id',
  );
}

async function previewOrThrow(repo: ImportRepository, ref: PreviewRef): Promise<StoredPreview> {
  const p = await repo.getPreview(ref.districtId, ref.previewId);
  if (!p)
    throw new ImportPreviewError(
      ref.previewId,
      'not-found',
      `no such preview in district ${ref.districtId} (previews expire; run the preview again)`,
    );
  return p;
}

/** A stored preview (any status). Throws `ImportPreviewError` (`not-found`). */
export async function getImportPreview(
  ctx: ImportContext,
  ref: PreviewRef,
): Promise<ImportPreview> {
  const r = parseRef(ref);
  const repo = await importRepository(ctx.store);
  const p = await previewOrThrow(repo, r);
  const issues = (await repo.getPreviewPart(p.id, 'issues')) as RowIssue[];
  return toView(p, issues.slice(0, PREVIEW_ISSUES));
}

/** A page of a preview's row issues, by row. Throws `ImportPreviewError` (`not-found`). */
export async function listImportIssues(
  ctx: ImportContext,
  ref: PreviewRef & { offset?: number; limit?: number },
): Promise<{ total: number; offset: number; limit: number; items: RowIssue[] }> {
  const r = parseRef({ districtId: ref.districtId, previewId: ref.previewId });
  const offset = Math.max(0, ref.offset ?? 0);
  const limit = Math.min(Math.max(1, ref.limit ?? 100), 1000);
  const repo = await importRepository(ctx.store);
  const p = await previewOrThrow(repo, r);
  const issues = (await repo.getPreviewPart(p.id, 'issues')) as RowIssue[];
  return { total: issues.length, offset, limit, items: issues.slice(offset, offset + limit) };
}

/**
 * The row report of a preview as CSV (file, row, column, value, severity, reason).
 * Throws `ImportPreviewError` (`not-found`).
 */
export async function importReportCsv(ctx: ImportContext, ref: PreviewRef): Promise<string> {
  const r = parseRef(ref);
  const repo = await importRepository(ctx.store);
  const p = await previewOrThrow(repo, r);
  return issuesCsv((await repo.getPreviewPart(p.id, 'issues')) as RowIssue[]);
}

// --- confirm ---------------------------------------------------------------------------

function unavailable(ref: PreviewRef, p: StoredPreview | undefined, now: Date): ImportPreviewError {
  if (!p)
    return new ImportPreviewError(
      ref.previewId,
      'not-found',
      `no such preview in district ${ref.districtId} (previews expire; run the preview again)`,
    );
  if (p.status === 'superseded')
    return new ImportPreviewError(
      p.id,
      'superseded',
      `replaced by preview ${p.supersededBy ?? '?'} because the data changed; confirm that one`,
    );
  if (p.expiresAt <= now.toISOString())
    return new ImportPreviewError(
      p.id,
      'expired',
      `expired at ${p.expiresAt}; run the preview again`,
    );
  return new ImportPreviewError(p.id, 'in-progress', 'is being applied by another request');
}

export interface ConfirmOptions {
  /** Clock (tests). */
  now?: () => Date;
  /**
   * The file and options the caller believes the preview was made from (the CLI passes what
   * it was given): a different file or other options refuse the confirm (`input-mismatch`).
   */
  expect?: { file: { name: string; data: Uint8Array }; options?: unknown };
  /**
   * Who confirms, recorded as the actor of the change-log entries: `api:<token name>`,
   * `cli:<os user>`. Default `system`.
   */
  actor?: string | undefined;
}

/** Input fingerprint: kind, the file's sha256 and the parsed options. */
function inputFingerprint(kind: ImportKind, sha256: string, options: unknown): string {
  return fingerprint({ kind, file: sha256, options });
}

function checkSameInput(
  preview: StoredPreview,
  expect: NonNullable<ConfirmOptions['expect']>,
): void {
  const meta = preview.meta as unknown as PreviewMeta;
  const data = ImportFileInput.parse(expect.file).data;
  const sha = createHash('sha256').update(data).digest('hex');
  if (sha !== meta.file.sha256)
    throw new ImportPreviewError(
      preview.id,
      'input-mismatch',
      `was made from another file than ${expect.file.name} (the file changed since the preview?); run the preview again`,
    );
  if (expect.options === undefined) return;
  const options =
    preview.kind === 'parents'
      ? parseInput(ParentImportOptions, expect.options, 'import options')
      : parseInput(AssociationImportOptions, expect.options, 'import options');
  if (inputFingerprint(preview.kind, sha, options) !== meta.fingerprints.input)
    throw new ImportPreviewError(
      preview.id,
      'input-mismatch',
      'was made with other options than the ones given now; confirm without options or run the preview again',
    );
}

/**
 * Apply a preview's plan exactly (invariant 12). In one step the store re-loads the state the
 * plan was made on and compares its fingerprint with the preview's:
 * - equal → the stored plan is written with its change-log entries (cause `import` with the
 *   preview id, actor `opts.actor`) and the preview marked `applied` → `applied`; the
 *   change-log consumers are kicked (activation emails, when the import asked for them, are
 *   queued by them from the log — see `ConfirmResult`);
 * - different → nothing is written; the same rows are planned again on the current state and
 *   stored as a new preview, which replaces this one → `changed` (confirm the new one).
 * Confirming an applied preview again returns `already-applied` and writes nothing.
 * Throws `ImportPreviewError` (missing, expired, replaced, being applied), `StoreConflictError`
 * when a concurrent writer won a unique key (confirm again: it will report `changed`).
 */
export async function confirmImport(
  ctx: AppContext,
  ref: PreviewRef,
  opts: ConfirmOptions = {},
): Promise<ConfirmResult> {
  const r = parseRef(ref);
  const now = opts.now?.() ?? new Date();
  const district = ctx.district(r.districtId);
  const repo = await importRepository(ctx.store);
  const preview = await previewOrThrow(repo, r);
  if (opts.expect) checkSameInput(preview, opts.expect);
  if (preview.status === 'applied')
    return {
      status: 'already-applied',
      previewId: preview.id,
      kind: preview.kind,
      appliedAt: preview.appliedAt ?? '',
      result: preview.result ?? {},
    };
  if (preview.status !== 'previewed' || preview.expiresAt <= now.toISOString())
    throw unavailable(r, preview, now);
  const meta = preview.meta as unknown as PreviewMeta;
  const actor = opts.actor ?? 'system';

  if (preview.kind === 'parents') {
    const options = ParentImportOptions.parse(meta.options);
    const change: ChangeContext = {
      cause: {
        kind: 'import',
        id: preview.id,
        trigger: 'parents',
        notify: options.sendActivationEmail,
      },
      actor,
    };
    const roles = await effectiveDistrictRoles(ctx.store, district);
    const records = (await repo.getPreviewPart(preview.id, 'records')) as ParentImportRecord[];
    const plan = await loadParentPlan(repo, preview.id);
    if (planFingerprint(plan) !== meta.fingerprints.plan)
      throw new Error(`stored plan of preview ${preview.id} does not match its fingerprint`);
    const merged = (await repo.getPreviewPart(preview.id, 'merged')) as MergedRow[];
    const counts = parentCounts(plan, merged);
    const outcome = await repo.applyParentImport({
      districtId: district.id,
      previewId: preview.id,
      now,
      keys: parentImportKeys(records),
      isCurrent: state => parentStateFingerprint(state, roles) === meta.fingerprints.state,
      write: parentImportWrite(plan),
      result: { counts },
      change,
    });
    if (outcome.kind === 'unavailable') return alreadyOr(r, outcome.preview, now);
    if (outcome.kind === 'stale') {
      const tPlan = performance.now();
      const {
        plan: next,
        issues,
        merged: nextMerged,
      } = planParents(
        { district, roles },
        meta.file.name,
        meta.columns,
        options,
        records,
        outcome.state,
      );
      const fresh = await savePreview(repo, {
        timings: { readMs: 0, loadMs: 0, planMs: Math.round(performance.now() - tPlan) },
        kind: 'parents',
        districtId: district.id,
        info: meta.file,
        options,
        columns: meta.columns,
        expiresInMinutes: meta.expiresInMinutes,
        records,
        fileIssues: (await repo.getPreviewPart(preview.id, 'fileIssues')) as RowIssue[],
        excluded: (await repo.getPreviewPart(preview.id, 'excluded')) as ExcludedRow[],
        planIssues: issues,
        dataRows: meta.rows.data,
        counts: parentCounts(next, nextMerged),
        samples: parentSamples(next, nextMerged),
        planParts: parentPlanParts(next),
        extraParts: { merged: nextMerged },
        planFingerprint: planFingerprint(next),
        stateFingerprint: parentStateFingerprint(outcome.state, roles),
        now,
        supersedes: preview.id,
      });
      return changed(repo, district.id, preview.id, fresh);
    }
    const activationEmails: ActivationRequest | undefined = options.sendActivationEmail
      ? {
          requested: plan.activationParentIds.length,
          noEmail: plan.creates.filter(c => !c.account.emailNormalized).map(c => c.account.id),
        }
      : undefined;
    ctx.logger.info(
      {
        districtId: district.id,
        previewId: preview.id,
        kind: 'parents',
        actor,
        counts,
        writes: outcome.writes,
      },
      'import applied',
    );
    await kickAfterApply(ctx, district.id, preview.id);
    return {
      status: 'applied',
      previewId: preview.id,
      kind: 'parents',
      appliedAt: outcome.preview.appliedAt ?? now.toISOString(),
      counts,
      writes: outcome.writes,
      ...(activationEmails ? { activationEmails } : {}),
    };
  }

  const options = AssociationImportOptions.parse(meta.options);
  const records = (await repo.getPreviewPart(preview.id, 'records')) as AssociationImportRecord[];
  const plan = await loadAssociationPlan(repo, preview.id);
  if (planFingerprint(plan) !== meta.fingerprints.plan)
    throw new Error(`stored plan of preview ${preview.id} does not match its fingerprint`);
  const merged = (await repo.getPreviewPart(preview.id, 'merged')) as MergedRow[];
  const counts = associationCounts(plan, merged);
  const outcome = await repo.applyAssociationImport({
    districtId: district.id,
    previewId: preview.id,
    now,
    keys: associationImportKeys(records),
    isCurrent: state => associationStateFingerprint(state) === meta.fingerprints.state,
    write: associationWrite(district.id, plan),
    result: { counts },
    change: { cause: { kind: 'import', id: preview.id, trigger: 'associations' }, actor },
  });
  if (outcome.kind === 'unavailable') return alreadyOr(r, outcome.preview, now);
  if (outcome.kind === 'stale') {
    const tPlan = performance.now();
    const unusable = (await repo.getPreviewPart(preview.id, 'unusable')) as {
      row: number;
      studentUniqueId?: string;
    }[];
    const { plan: next, issues } = planAssociationImport(records, outcome.state, {
      districtId: district.id,
      fileName: meta.file.name,
      columns: meta.columns,
      clearExisting: options.clearExisting,
      unusableRows: unusable,
    });
    const fresh = await savePreview(repo, {
      timings: { readMs: 0, loadMs: 0, planMs: Math.round(performance.now() - tPlan) },
      kind: 'associations',
      districtId: district.id,
      info: meta.file,
      options,
      columns: meta.columns,
      expiresInMinutes: meta.expiresInMinutes,
      records,
      fileIssues: (await repo.getPreviewPart(preview.id, 'fileIssues')) as RowIssue[],
      excluded: (await repo.getPreviewPart(preview.id, 'excluded')) as ExcludedRow[],
      planIssues: issues,
      dataRows: meta.rows.data,
      counts: associationCounts(next, merged),
      samples: associationSamples(next, merged),
      planParts: associationPlanParts(next),
      extraParts: { unusable, merged },
      planFingerprint: planFingerprint(next),
      stateFingerprint: associationStateFingerprint(outcome.state),
      now,
      supersedes: preview.id,
    });
    return changed(repo, district.id, preview.id, fresh);
  }
  ctx.logger.info(
    {
      districtId: district.id,
      previewId: preview.id,
      kind: 'associations',
      actor,
      counts,
      writes: outcome.writes,
    },
    'import applied',
  );
  await kickAfterApply(ctx, district.id, preview.id);
  return {
    status: 'applied',
    previewId: preview.id,
    kind: 'associations',
    appliedAt: outcome.preview.appliedAt ?? now.toISOString(),
    counts,
    writes: outcome.writes,
  };
}

/**
 * Ask the change-log consumers to catch up after an apply. The apply is committed and its
 * entries are in the log whatever happens here: a failed kick is logged, not thrown (the
 * consumers' periodic sweep picks the entries up).
 */
async function kickAfterApply(ctx: AppContext, districtId: string, previewId: string) {
  try {
    await kickChanges(ctx, districtId);
  } catch (err) {
    ctx.logger.warn(
      { districtId, previewId, err },
      'import applied; change consumers not kicked (the periodic sweep will catch up)',
    );
  }
}

function alreadyOr(ref: PreviewRef, p: StoredPreview | undefined, now: Date): ConfirmResult {
  if (p?.status === 'applied')
    return {
      status: 'already-applied',
      previewId: p.id,
      kind: p.kind,
      appliedAt: p.appliedAt ?? '',
      result: p.result ?? {},
    };
  throw unavailable(ref, p, now);
}

async function changed(
  repo: ImportRepository,
  districtId: string,
  oldId: string,
  fresh: ImportPreview,
): Promise<ConfirmResult> {
  await repo.supersedePreview(districtId, oldId, fresh.previewId);
  return {
    status: 'changed',
    previewId: oldId,
    message: `the data changed since preview ${oldId}; nothing was applied. Review the new preview ${fresh.previewId} and confirm it instead`,
    preview: fresh,
  };
}
