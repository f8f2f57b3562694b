/**
 * OneRoster CSV packages (sis-reference §1.5): a folder or a zip with `manifest.csv`,
 * `orgs.csv`, `users.csv`, `classes.csv`, `enrollments.csv` (1.2 also `roles.csv`).
 *
 * - `manifest.csv` (`propertyName,value`) says per file `bulk`, `delta` or `absent`;
 * - header names are matched case-insensitively with known aliases (district-built exports
 *   misspell them, e.g. `agentSourceIds`); a UTF-8 BOM is stripped;
 * - multi-value cells (`orgSourcedIds`, `agentSourcedIds`, `grades`) are comma-separated
 *   inside one quoted cell; `userIds` is `{type:id},{type:id}`;
 * - bulk files leave `status`/`dateLastModified` blank (= active);
 * - rows are converted to the REST JSON shape and parsed by the same zod schemas
 *   (`./payloads.ts`), so CSV and REST records map identically.
 *
 * Files are streamed (csv-parse); nothing reads a whole file into memory. Zips are read
 * with yauzl (random access: an entry can be streamed more than once).
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import yauzl from 'yauzl';
import { SisPayloadError } from '../../errors.js';

/** Where the CSV files of one package are read from. */
export interface CsvPackage {
  /** For messages: the folder or zip path. */
  readonly description: string;
  /** Does the package hold `name` (case-insensitive)? */
  has(name: string): boolean;
  /** A fresh stream of `name`, or undefined when absent. */
  open(name: string): Promise<Readable | undefined>;
  close(): Promise<void>;
}

/** A folder of CSV files. Throws `SisPayloadError` when the folder cannot be read. */
export function folderPackage(path: string): CsvPackage {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (err) {
    throw new SisPayloadError(
      `OneRoster CSV folder ${path} cannot be read: ${(err as Error).message}`,
    );
  }
  const byLower = new Map(names.map(n => [n.toLowerCase(), n]));
  return {
    description: path,
    has: name => byLower.has(name.toLowerCase()),
    open: name => {
      const real = byLower.get(name.toLowerCase());
      return Promise.resolve(real === undefined ? undefined : createReadStream(join(path, real)));
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Open a zip package (entries matched by base name, so files inside one folder of the zip
 * work too). Throws `SisPayloadError` when the file is not a readable zip.
 */
export async function zipPackage(path: string): Promise<CsvPackage> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false }, (err, z) => {
      if (err) reject(new SisPayloadError(`OneRoster zip ${path} cannot be read: ${err.message}`));
      else resolve(z);
    });
  });
  const entries = new Map<string, yauzl.Entry>();
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (e: yauzl.Entry) => {
      if (!e.fileName.endsWith('/')) {
        const key = basename(e.fileName).toLowerCase();
        if (!entries.has(key)) entries.set(key, e);
      }
      zip.readEntry();
    });
    zip.on('end', () => resolve());
    zip.on('error', (err: Error) =>
      reject(new SisPayloadError(`OneRoster zip ${path} is damaged: ${err.message}`)),
    );
    zip.readEntry();
  });
  return {
    description: path,
    has: name => entries.has(name.toLowerCase()),
    open: name => {
      const e = entries.get(name.toLowerCase());
      if (!e) return Promise.resolve(undefined);
      return new Promise((resolve, reject) => {
        zip.openReadStream(e, (err, stream) => {
          if (err) reject(new SisPayloadError(`OneRoster zip ${path}: ${name}: ${err.message}`));
          else resolve(stream);
        });
      });
    },
    close: () => {
      zip.close();
      return Promise.resolve();
    },
  };
}

/** `path` itself when it is a file, else the newest `*.zip` in the folder `path`. */
export function newestZip(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new SisPayloadError(
      `OneRoster zip path ${path} cannot be read: ${(err as Error).message}`,
    );
  }
  if (st.isFile()) return path;
  const zips = readdirSync(path)
    .filter(n => n.toLowerCase().endsWith('.zip'))
    .map(n => ({ n, t: statSync(join(path, n)).mtimeMs }))
    .sort((a, b) => b.t - a.t || b.n.localeCompare(a.n));
  const first = zips[0];
  if (!first) throw new SisPayloadError(`no *.zip file in ${path}`);
  return join(path, first.n);
}

// ---------------------------------------------------------------------------------------------
// Manifest
// ---------------------------------------------------------------------------------------------

export type FileMode = 'bulk' | 'delta' | 'absent';

export interface CsvManifest {
  /** `oneroster.version` (`1.1` or `1.2`; a declared `1.0` is read as `1.1`). */
  version: '1.1' | '1.2';
  /** Mode per file name without `.csv` (`users`, `orgs`, …). */
  files: Record<string, FileMode>;
  /** `source.systemName`, when given. */
  systemName?: string | undefined;
}

/**
 * Read `manifest.csv`. A file the manifest does not mention counts as `bulk` when the
 * package has it, else `absent`. Throws `SisPayloadError` naming the package when the
 * manifest is missing or a value is not understood.
 */
export async function readManifest(pkg: CsvPackage): Promise<CsvManifest> {
  if (!pkg.has('manifest.csv'))
    throw new SisPayloadError(
      `${pkg.description}: manifest.csv is missing (not a OneRoster CSV package)`,
    );
  const props = new Map<string, string>();
  for await (const { row } of csvRows(pkg, 'manifest.csv')) {
    const name = (row.propertyname ?? '').trim();
    if (name) props.set(name.toLowerCase(), (row.value ?? '').trim());
  }
  const declared = props.get('oneroster.version') ?? '1.1';
  // 1.0 packages are read like 1.1 (same files; its header names are aliases, see ALIASES).
  const v = declared === '1.0' ? '1.1' : declared;
  if (v !== '1.1' && v !== '1.2')
    throw new SisPayloadError(
      `${pkg.description}: manifest.csv: oneroster.version "${declared}" is not 1.0, 1.1 or 1.2`,
    );
  const files: Record<string, FileMode> = {};
  for (const f of ['orgs', 'users', 'classes', 'enrollments', 'roles']) {
    const raw = props.get(`file.${f}`)?.toLowerCase();
    if (raw === undefined || raw === '') {
      files[f] = pkg.has(`${f}.csv`) ? 'bulk' : 'absent';
    } else if (raw === 'bulk' || raw === 'delta' || raw === 'absent') {
      files[f] = raw;
    } else {
      throw new SisPayloadError(
        `${pkg.description}: manifest.csv: file.${f} "${raw}" is not bulk, delta or absent`,
      );
    }
    if (files[f] !== 'absent' && !pkg.has(`${f}.csv`))
      throw new SisPayloadError(
        `${pkg.description}: manifest.csv says file.${f}=${files[f]} but ${f}.csv is missing`,
      );
  }
  return { version: v, files, systemName: props.get('source.systemname') };
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/** Canonical column names (lower-case key → OneRoster spelling), with known aliases. */
const COLUMN_NAMES: Record<string, string> = Object.fromEntries(
  [
    'sourcedId',
    'status',
    'dateLastModified',
    'enabledUser',
    'orgSourcedIds',
    'role',
    'roleType',
    'username',
    'userIds',
    'givenName',
    'familyName',
    'middleName',
    'identifier',
    'email',
    'sms',
    'phone',
    'agentSourcedIds',
    'grades',
    'password',
    'userMasterIdentifier',
    'preferredGivenName',
    'preferredMiddleName',
    'preferredFamilyName',
    'primaryOrgSourcedId',
    'name',
    'type',
    'parentSourcedId',
    'title',
    'classCode',
    'schoolSourcedId',
    'classSourcedId',
    'userSourcedId',
    'orgSourcedId',
    'propertyName',
    'value',
  ].map(n => [n.toLowerCase(), n]),
);
const ALIASES: Record<string, string> = {
  agentsourceids: 'agentSourcedIds',
  agentids: 'agentSourcedIds',
  orgsourceids: 'orgSourcedIds',
  orgids: 'orgSourcedIds',
  firstname: 'givenName',
  lastname: 'familyName',
  grade: 'grades',
  schoolsourceid: 'schoolSourcedId',
  classsourceid: 'classSourcedId',
  usersourceid: 'userSourcedId',
  // OneRoster 1.0 CSV names (users.csv): `agents` and `userId` became `agentSourcedIds` and
  // `userIds` in 1.1.
  agents: 'agentSourcedIds',
  userid: 'userIds',
};

/** The canonical spelling of a header cell (BOM and spaces stripped, aliases resolved). */
export function canonicalColumn(header: string): string {
  const h = header.replace(/^\uFEFF/, '').trim();
  const k = h.toLowerCase();
  return COLUMN_NAMES[k] ?? ALIASES[k] ?? h;
}

export interface CsvRow {
  /** Cells by canonical column name (also lower-cased for manifest use). */
  row: Record<string, string>;
  /** 1-based line number of the row in the file (header = line 1). */
  line: number;
}

/**
 * Stream the rows of `name`. Throws `SisPayloadError` naming the file and line when the
 * CSV is malformed (unbalanced quotes, a row with a different number of cells than the
 * header names) or a required column is missing.
 *
 * Header quirks accepted (docs/oneroster.md): a BOM, names in any case or with spaces, known
 * aliases, and empty cells at the end of the header (`…,orgSourcedId,,`, written by some
 * vendors' 1.2 exports): those are ignored, and a row may have as many cells as the named
 * columns or as the whole header (its cells under the unnamed columns must then be empty).
 * A row longer than that, or with a value under an unnamed column, is refused.
 */
export async function* csvRows(
  pkg: CsvPackage,
  name: string,
  required: readonly string[] = [],
): AsyncGenerator<CsvRow> {
  const stream = await pkg.open(name);
  if (!stream) throw new SisPayloadError(`${pkg.description}: ${name} is missing`);
  const isManifest = name.toLowerCase() === 'manifest.csv';
  const where = (line: number) => `${pkg.description}: ${name} line ${line}`;
  // Rows are read as arrays and matched to the header here (not by csv-parse's `columns`),
  // so trailing empty header cells can be told apart from real extra values.
  const parser = stream.pipe(
    parse({ bom: true, skip_empty_lines: true, relax_column_count: true, info: true }),
  );
  stream.on('error', err => parser.destroy(err));
  let cols: string[] | undefined;
  let headerCells = 0;
  try {
    for await (const rec of parser as AsyncIterable<{
      record: string[];
      info: { lines: number };
    }>) {
      const line = rec.info.lines;
      if (cols === undefined) {
        headerCells = rec.record.length;
        let named = headerCells;
        while (named > 0 && (rec.record[named - 1] ?? '').replace(/^\uFEFF/, '').trim() === '')
          named--;
        cols = rec.record.slice(0, named).map(h =>
          isManifest
            ? h
                .replace(/^\uFEFF/, '')
                .trim()
                .toLowerCase()
            : canonicalColumn(h),
        );
        const missing = required.filter(r => !cols?.includes(r));
        if (missing.length)
          throw new SisPayloadError(
            `${pkg.description}: ${name}: missing column(s) ${missing.join(', ')}`,
          );
        continue;
      }
      const cells = rec.record;
      if (cells.length < cols.length || cells.length > Math.max(cols.length, headerCells))
        throw new SisPayloadError(
          `${where(line)}: the row has ${cells.length} cells but the header names ${cols.length} ` +
            `columns${headerCells > cols.length ? ` (plus ${headerCells - cols.length} empty header cells)` : ''}; ` +
            'fix the row (a missing or extra comma, or a value with a comma that is not in quotes)',
        );
      const extra = cells.slice(cols.length).findIndex(c => c.trim() !== '');
      if (extra >= 0)
        throw new SisPayloadError(
          `${where(line)}: cell ${cols.length + extra + 1} has the value "${cells[cols.length + extra]?.slice(0, 40) ?? ''}" ` +
            'but its header cell is empty; give the column a name or remove the value',
        );
      const row: Record<string, string> = {};
      cols.forEach((c, i) => (row[c] = cells[i] ?? ''));
      yield { row, line };
    }
  } catch (err) {
    if (err instanceof SisPayloadError) throw err;
    const e = err as Error & { lines?: number };
    throw new SisPayloadError(
      `${pkg.description}: ${name}${e.lines !== undefined ? ` line ${e.lines}` : ''}: ${e.message}`,
    );
  } finally {
    stream.destroy();
  }
}

/** Split a multi-value cell (`"s100,s101"`) into trimmed, non-empty values. */
export function splitList(cell: string | undefined): string[] {
  if (cell === undefined) return [];
  return cell
    .split(',')
    .map(s => s.trim())
    .filter(s => s !== '');
}

/** Parse a `userIds` cell: `{Fed:123},{LDAP:ab12}` (braces optional) → `[{type, identifier}]`. */
export function parseUserIds(cell: string | undefined): { type: string; identifier: string }[] {
  if (cell === undefined || cell.trim() === '') return [];
  const braced = [...cell.matchAll(/\{([^}]*)\}/g)].map(m => m[1] ?? '');
  const items = braced.length > 0 ? braced : cell.split(',');
  const out: { type: string; identifier: string }[] = [];
  for (const item of items) {
    const i = item.indexOf(':');
    if (i <= 0) continue;
    const type = item.slice(0, i).trim();
    const identifier = item.slice(i + 1).trim();
    if (type && identifier) out.push({ type, identifier });
  }
  return out;
}

const blank = (s: string | undefined) => (s === undefined || s.trim() === '' ? undefined : s);

/** A `users.csv` row in the REST JSON shape (parse it with `OrUser`). */
export function userRowToJson(row: Record<string, string>): Record<string, unknown> {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(row)) {
    if (k.toLowerCase().startsWith('metadata.') && v.trim() !== '')
      metadata[k.slice('metadata.'.length)] = v;
  }
  return {
    sourcedId: row.sourcedId,
    status: row.status,
    dateLastModified: row.dateLastModified,
    enabledUser: blank(row.enabledUser),
    role: row.role,
    orgs: splitList(row.orgSourcedIds),
    primaryOrg: blank(row.primaryOrgSourcedId),
    username: row.username,
    userIds: parseUserIds(row.userIds),
    givenName: row.givenName,
    familyName: row.familyName,
    middleName: row.middleName,
    identifier: row.identifier,
    email: row.email,
    sms: row.sms,
    phone: row.phone,
    agents: splitList(row.agentSourcedIds),
    grades: splitList(row.grades),
    userMasterIdentifier: row.userMasterIdentifier,
    ...(Object.keys(metadata).length ? { metadata } : {}),
  };
}

/** An `orgs.csv` row in the REST JSON shape (parse with `OrOrg`). */
export function orgRowToJson(row: Record<string, string>): Record<string, unknown> {
  return {
    sourcedId: row.sourcedId,
    status: row.status,
    name: row.name,
    type: row.type,
    identifier: row.identifier,
  };
}

/** A `classes.csv` row in the REST JSON shape (parse with `OrClass`). */
export function classRowToJson(row: Record<string, string>): Record<string, unknown> {
  return {
    sourcedId: row.sourcedId,
    status: row.status,
    title: row.title,
    classCode: row.classCode,
    school: blank(row.schoolSourcedId),
  };
}

/** An `enrollments.csv` row in the REST JSON shape (parse with `OrEnrollment`). */
export function enrollmentRowToJson(row: Record<string, string>): Record<string, unknown> {
  return {
    sourcedId: row.sourcedId,
    status: row.status,
    user: blank(row.userSourcedId),
    class: blank(row.classSourcedId),
    role: row.role,
  };
}
