/**
 * Streamed CSV exports of Parent Access Codes (csv-stringify):
 * - district "download all": every active student — Unique ID, first/last name, school,
 *   grade, code (empty when the student holds none, e.g. already linked under the
 *   `unlinked` setting) — read from the store page by page (keyset on sourcedId), never
 *   the whole district at once;
 * - one course section: the section's actively enrolled, active students with their codes.
 *
 * Files are UTF-8 with a byte-order mark (Excel then reads accents correctly); cells go
 * through the product's one formula neutraliser (src/csv.ts), so a spreadsheet never runs a
 * name as a formula (OWASP "CSV injection").
 */
import { Readable, pipeline } from 'node:stream';
import { stringify } from 'csv-stringify';
import { z } from 'zod';
import { SAFE_CSV_OPTIONS } from '../csv.js';
import { accessCodeRepository, type StudentCodeRow } from '../models/access-codes/index.js';
import { sectionRepository } from '../models/sections/index.js';
import { formatAccessCode } from './code.js';
import { AccessCodesDisabledError, NotFoundError } from './errors.js';
import { districtOf, mergeSettings, parseInput, type AccessCodeContext } from './service.js';

export const DISTRICT_EXPORT_COLUMNS = [
  'Unique ID',
  'First Name',
  'Last Name',
  'School',
  'Grade',
  'Access Code',
] as const;
export const SECTION_EXPORT_COLUMNS = [
  'Section',
  'Unique ID',
  'First Name',
  'Last Name',
  'Grade',
  'Access Code',
] as const;

const PAGE = 1000;

export const ExportDistrictInput = z.strictObject({ districtId: z.string().trim().min(1) });
export const ExportSectionInput = z.strictObject({
  districtId: z.string().trim().min(1),
  sectionSourcedId: z.string().trim().min(1),
});
export const ListSectionsInput = ExportDistrictInput;

/** A CSV download: suggested file name, content type and the byte stream. */
export interface CsvDownload {
  filename: string;
  contentType: 'text/csv; charset=utf-8';
  /** UTF-8 bytes (with BOM). Errors while reading the store surface as stream errors. */
  stream: Readable;
  /** Rows written so far and how many of them have a blank code (final once `stream` ends). */
  tally: { rows: number; withoutCode: number };
  /**
   * Set when the district has no active code at all (codes were just enabled): every code
   * cell is blank until the next sync or `codes issue` issues them. Known before streaming
   * (the API sends it as the `X-Access-Codes-Note` header).
   */
  note?: string | undefined;
  /** `unlinked` or `all`: who gets codes (explains blank cells under `unlinked`). */
  issueTo: 'unlinked' | 'all';
}

/**
 * What a blank code in an export means and what to do: codes are issued at the end of every
 * sync and by `codes issue` (API: `POST /districts/:id/access-codes/issue`); under
 * `issueTo: unlinked` a student with a guardian link gets none.
 */
export function blankCodesNote(
  districtId: string,
  withoutCode: number,
  rows: number,
  issueTo: 'unlinked' | 'all',
  prefix = 'guardian-sync',
): string {
  const why =
    issueTo === 'unlinked'
      ? ' (with issueTo "unlinked", students who have a guardian link get no code)'
      : '';
  return `${withoutCode} of ${rows} student(s) have no code yet, so their Access Code cell is blank${why}. Codes are issued at the end of the next sync, or now with: ${prefix} codes issue ${districtId}`;
}

function csv(columns: readonly string[], rows: () => AsyncGenerator<string[]>): Readable {
  const out = stringify({
    bom: true,
    header: true,
    columns: [...columns],
    ...SAFE_CSV_OPTIONS,
    record_delimiter: 'windows',
  });
  pipeline(Readable.from(rows()), out, () => undefined); // errors destroy `out` with the cause
  return out;
}

const code = (r: StudentCodeRow) => (r.code ? formatAccessCode(r.code) : '');
const count = (tally: CsvDownload['tally'], r: StudentCodeRow) => {
  tally.rows++;
  if (!r.code) tally.withoutCode++;
};
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 60);

async function enabledDistrict(ctx: AccessCodeContext, districtId: string) {
  const district = districtOf(ctx, districtId);
  const repo = await accessCodeRepository(ctx.store);
  const settings = mergeSettings(district.accessCodes, await repo.getSettingsOverride(district.id));
  if (!settings.enabled) throw new AccessCodesDisabledError(district.id);
  // No code at all yet (codes just enabled): say so before the download starts.
  const none = (await repo.countActiveCodes(district.id)) === 0;
  const note = none
    ? `no Parent Access Code has been issued in district ${district.id} yet: every code cell is blank until the next sync, or \`codes issue ${district.id}\` (POST /districts/${district.id}/access-codes/issue)`
    : undefined;
  return { district, repo, note, issueTo: settings.issueTo };
}

/**
 * District "download all". Throws `NotFoundError` (unknown district) or
 * `AccessCodesDisabledError` before the stream starts.
 */
export async function exportDistrictCodes(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<CsvDownload> {
  const input = parseInput(ExportDistrictInput, raw);
  const { district, repo, note, issueTo } = await enabledDistrict(ctx, input.districtId);
  const schools = await repo.schoolNames(district.id);
  const tally = { rows: 0, withoutCode: 0 };
  async function* rows(): AsyncGenerator<string[]> {
    let after: string | undefined;
    for (;;) {
      const page = await repo.studentCodeRows(district.id, { after, limit: PAGE });
      for (const r of page) {
        count(tally, r);
        yield [
          r.uniqueId,
          r.givenName,
          r.familyName,
          r.schoolSourcedIds.map(id => schools.get(id) ?? id).join('; '),
          r.grade ?? '',
          code(r),
        ];
      }
      if (page.length < PAGE) return;
      after = page[page.length - 1]?.sourcedId;
    }
  }
  return {
    filename: `access-codes-${safeName(district.id)}-${new Date().toISOString().slice(0, 10)}.csv`,
    contentType: 'text/csv; charset=utf-8',
    stream: csv(DISTRICT_EXPORT_COLUMNS, rows),
    tally,
    note,
    issueTo,
  };
}

/**
 * One course section: its active students with an active enrollment, by last then first
 * name. Throws `NotFoundError` for an unknown district or section,
 * `AccessCodesDisabledError` when codes are disabled.
 */
export async function exportSectionCodes(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<CsvDownload> {
  const input = parseInput(ExportSectionInput, raw);
  const { district, repo, note, issueTo } = await enabledDistrict(ctx, input.districtId);
  const tally = { rows: 0, withoutCode: 0 };
  const sections = await sectionRepository(ctx.store);
  const section = await sections.getSection(district.id, input.sectionSourcedId);
  if (!section) throw new NotFoundError(`unknown section "${input.sectionSourcedId}"`);
  const title = section.title;
  const ids = await sections.sectionStudentIds(district.id, section.sourcedId);
  const collator = new Intl.Collator('en', { sensitivity: 'base', numeric: true });
  async function* rows(): AsyncGenerator<string[]> {
    for (let i = 0; i < ids.length; i += PAGE) {
      const page = (await repo.studentCodeRowsOf(district.id, ids.slice(i, i + PAGE)))
        .filter(r => r.status === 'active')
        .sort(
          (a, b) =>
            collator.compare(a.familyName, b.familyName) ||
            collator.compare(a.givenName, b.givenName) ||
            collator.compare(a.uniqueId, b.uniqueId),
        );
      for (const r of page) {
        count(tally, r);
        yield [title, r.uniqueId, r.givenName, r.familyName, r.grade ?? '', code(r)];
      }
    }
  }
  // One page covers any real section; larger lists are sorted page by page.
  return {
    filename: `access-codes-${safeName(district.id)}-section-${safeName(section.sourcedId)}.csv`,
    contentType: 'text/csv; charset=utf-8',
    stream: csv(SECTION_EXPORT_COLUMNS, rows),
    tally,
    note,
    issueTo,
  };
}

/** The district's course sections with their active student counts (to pick one). */
export async function listSections(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<{ sourcedId: string; title: string; schoolSourcedId: string; students: number }[]> {
  const input = parseInput(ListSectionsInput, raw);
  const district = districtOf(ctx, input.districtId);
  const sections = await sectionRepository(ctx.store);
  const out = [];
  for (const s of await sections.listSections(district.id)) {
    out.push({
      sourcedId: s.sourcedId,
      title: s.title,
      schoolSourcedId: s.schoolSourcedId,
      students: (await sections.sectionStudentIds(district.id, s.sourcedId)).length,
    });
  }
  return out;
}
