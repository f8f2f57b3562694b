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
const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 60);

async function enabledDistrict(ctx: AccessCodeContext, districtId: string) {
  const district = districtOf(ctx, districtId);
  const repo = await accessCodeRepository(ctx.store);
  const settings = mergeSettings(district.accessCodes, await repo.getSettingsOverride(district.id));
  if (!settings.enabled) throw new AccessCodesDisabledError(district.id);
  return { district, repo };
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
  const { district, repo } = await enabledDistrict(ctx, input.districtId);
  const schools = await repo.schoolNames(district.id);
  async function* rows(): AsyncGenerator<string[]> {
    let after: string | undefined;
    for (;;) {
      const page = await repo.studentCodeRows(district.id, { after, limit: PAGE });
      for (const r of page) {
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
  const { district, repo } = await enabledDistrict(ctx, input.districtId);
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
      for (const r of page)
        yield [title, r.uniqueId, r.givenName, r.familyName, r.grade ?? '', code(r)];
    }
  }
  // One page covers any real section; larger lists are sorted page by page.
  return {
    filename: `access-codes-${safeName(district.id)}-section-${safeName(section.sourcedId)}.csv`,
    contentType: 'text/csv; charset=utf-8',
    stream: csv(SECTION_EXPORT_COLUMNS, rows),
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
