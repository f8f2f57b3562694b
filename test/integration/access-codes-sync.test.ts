/**
 * Access codes in the real pipeline: fake PowerSchool (HTTP, with course sections) → BullMQ
 * (real Redis) → SQLite, then the finalize step's code issuance and the CSV exports.
 * Expected values come from the generator's ground truth, not from the code under test.
 */
import { parse } from 'csv-parse/sync';
import { formatAccessCode } from '../../src/access-codes/code.js';
import {
  DISTRICT_EXPORT_COLUMNS,
  SECTION_EXPORT_COLUMNS,
  exportDistrictCodes,
  exportSectionCodes,
} from '../../src/access-codes/export.js';
import { NotFoundError } from '../../src/access-codes/errors.js';
import {
  addGuardian,
  addStudent,
  expectedRoster,
  touchDistrict,
  type PsStudentRow,
} from '../../src/dev/district-generator.js';
import { sectionStudents } from '../../src/dev/section-generator.js';
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import { sectionRepository } from '../../src/models/sections/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { withoutExclusions } from '../../src/jobs/rejects.js';

const POLICY = { requireDataAccess: true, requireCustodial: false };
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  return Buffer.concat(parts);
}

/** Parse a CSV download: checks the BOM, returns header and records. */
function parseCsv(bytes: Buffer): { header: string[]; rows: string[][] } {
  expect(bytes.subarray(0, 3).equals(BOM)).toBe(true);
  const records: string[][] = parse(bytes.subarray(3).toString('utf8'));
  const [header = [], ...rows] = records;
  return { header, rows };
}

/** Active codes by student sourcedId, straight from the store. */
async function activeCodes(h: Harness): Promise<Map<string, string>> {
  const repo = await accessCodeRepository(h.store);
  const out = new Map<string, string>();
  for (const s of await h.store.getStudents(h.districtId)) {
    const c = (await repo.codesOfStudent(h.districtId, s.sourcedId)).filter(
      x => x.status === 'active',
    );
    expect(c.length).toBeLessThanOrEqual(1); // one active code per student, always
    if (c[0]) out.set(s.sourcedId, c[0].code);
  }
  return out;
}

/** Active students without a counted SIS guardian link, per the ground truth. */
function unlinkedTruth(h: Harness): string[] {
  const t = expectedRoster(h.sis, POLICY);
  const linked = new Set(t.links.map(l => String(l.studentDcid)));
  return t.students
    .map(s => String(s.dcid))
    .filter(id => !linked.has(id))
    .sort();
}

describe('access codes in a PowerSchool sync (links + sections)', () => {
  let h: Harness;
  let lonely: PsStudentRow;
  let formula: PsStudentRow;
  let firstCodes: Map<string, string>;

  beforeAll(async () => {
    h = await startHarness({
      students: 300,
      seed: 23,
      district: { accessCodes: { enabled: true } },
      connector: { sections: true },
      sections: { coursesPerSchool: 3, classSize: 20 },
    });
    // A student with no contact at all, and one whose names a spreadsheet would run.
    lonely = addStudent(h.sis, h.sis.schools[0]?.id ?? 0);
    formula = h.sis.students[3] as PsStudentRow;
    formula.first_name = '=HYPERLINK("http://evil.example","Zoë")';
    formula.last_name = '+Müller';
    touchDistrict(h.sis);
  });

  afterAll(async () => {
    await h?.close();
  });

  it('issues a code exactly to the active students without a SIS guardian link', async () => {
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const expected = unlinkedTruth(h);
    expect(expected).toContain(String(lonely.id));
    expect(expected.length).toBeLessThan(h.sis.students.length); // most students are linked
    firstCodes = await activeCodes(h);
    expect([...firstCodes.keys()].sort()).toEqual(expected);
    expect(run.counts.code).toEqual({ issue: expected.length });
    for (const c of firstCodes.values()) expect(formatAccessCode(c)).toMatch(/^.{4}-.{4}-.{4}$/);
    // sections and enrollments arrived with the chunks
    expect(run.counts.section?.create).toBe(h.sections?.sections.length);
    expect(run.counts.enrollment?.add).toBeGreaterThan(0);
  });

  it('a no-change resync writes nothing (roster, sections, codes) and issues nothing', async () => {
    const sections = await sectionRepository(h.store);
    const before = sections.writeCount();
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(writes + sections.writeCount() - before).toBe(0);
    // no changes (what the snapshot leaves out by rule is reported on every run)
    expect(withoutExclusions(run.counts)).toEqual({});
    expect(await activeCodes(h)).toEqual(firstCodes);
  });

  it('a later SIS link does not revoke the code', async () => {
    addGuardian(h.sis, lonely.id);
    const { run } = await h.sync();
    expect(run.counts.link?.add).toBe(1);
    expect(run.counts.code).toBeUndefined();
    const links = (await h.store.getLinks(h.districtId)).filter(
      l => l.studentSourcedId === String(lonely.id) && l.status === 'active',
    );
    expect(links).toHaveLength(1);
    expect((await activeCodes(h)).get(String(lonely.id))).toBe(firstCodes.get(String(lonely.id)));
  });

  it('a dry run counts exactly the codes the real run issues, and issues none', async () => {
    const fresh = addStudent(h.sis, h.sis.schools[1]?.id ?? 0); // no guardian: needs a code
    const linkedNew = addStudent(h.sis, h.sis.schools[1]?.id ?? 0);
    addGuardian(h.sis, linkedNew.id); // gets a SIS link in the same run: no code
    const { run, writes } = await h.sync({ dryRun: true });
    expect(run.counts.student?.create).toBe(2);
    expect(run.counts.code).toEqual({ issue: 1 });
    expect(writes).toBe(0);
    expect((await activeCodes(h)).has(String(fresh.id))).toBe(false);
    const real = await h.sync();
    expect(real.run.counts.code).toEqual({ issue: 1 });
    const codes = await activeCodes(h);
    expect(codes.has(String(fresh.id))).toBe(true);
    expect(codes.has(String(linkedNew.id))).toBe(false);
    expect(unlinkedTruth(h).every(id => codes.has(id))).toBe(true);
  });

  it('exports every active student as UTF-8 CSV with BOM, accents intact, formulas neutralised', async () => {
    const dl = await exportDistrictCodes(h.ctx, { districtId: h.districtId });
    expect(dl.filename).toMatch(/^access-codes-test-district-\d{4}-\d{2}-\d{2}\.csv$/);
    const { header, rows } = parseCsv(await readAll(dl.stream));
    expect(header).toEqual([...DISTRICT_EXPORT_COLUMNS]);
    const students = (await h.store.getStudents(h.districtId)).filter(s => s.status === 'active');
    expect(rows).toHaveLength(students.length);
    const codes = await activeCodes(h);
    const byUnique = new Map(rows.map(r => [r[0], r]));
    let accented = 0;
    for (const s of students) {
      const row = byUnique.get(s.uniqueId);
      if (!row) throw new Error(`student ${s.uniqueId} missing from the export`);
      const code = codes.get(s.sourcedId);
      expect(row[5]).toBe(code ? formatAccessCode(code) : '');
      expect(row[4]).toBe(s.grade ?? '');
      if (s.sourcedId === String(formula.id)) continue;
      expect([row[1], row[2]]).toEqual([s.givenName, s.familyName]);
      if (/[^ -~]/.test(`${s.givenName}${s.familyName}`)) accented++;
    }
    expect(accented).toBeGreaterThan(0);
    const f = byUnique.get(String(formula.local_id));
    expect(f?.[1]).toBe(`'=HYPERLINK("http://evil.example","Zoë")`);
    expect(f?.[2]).toBe(`'+Müller`);
    // schools by name
    const schoolNames = new Set(h.sis.schools.map(s => s.name));
    for (const r of rows) expect(schoolNames.has(r[3] ?? '')).toBe(true);
  });

  it('a section export lists exactly the section’s (not dropped) students', async () => {
    const sections = h.sections;
    if (!sections) throw new Error('harness without sections');
    const withDrop = sections.enrollments.find(e => e.dropped);
    const section =
      sections.sections.find(s => s.id === withDrop?.section_id) ?? sections.sections[0];
    if (!section) throw new Error('no sections generated');
    const localId = new Map(h.sis.students.map(s => [s.id, String(s.local_id)]));
    const expected = sectionStudents(sections, section.id)
      .map(id => localId.get(id) ?? '?')
      .sort();
    expect(expected.length).toBeGreaterThan(0);
    const dl = await exportSectionCodes(h.ctx, {
      districtId: h.districtId,
      sectionSourcedId: String(section.id),
    });
    const { header, rows } = parseCsv(await readAll(dl.stream));
    expect(header).toEqual([...SECTION_EXPORT_COLUMNS]);
    expect(rows.map(r => r[1]).sort()).toEqual(expected);
    const course = sections.courses.find(c => c.id === section.course_id);
    for (const r of rows) expect(r[0]).toContain(course?.course_name ?? '?');
    if (withDrop?.section_id === section.id) {
      const dropped = localId.get(withDrop.student_id);
      const stillIn = sections.enrollments.some(
        e => e.section_id === section.id && e.student_id === withDrop.student_id && !e.dropped,
      );
      if (!stillIn) expect(rows.map(r => r[1])).not.toContain(dropped);
    }
    await expect(
      exportSectionCodes(h.ctx, { districtId: h.districtId, sectionSourcedId: 'nope' }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });
});
