/**
 * The eSchoolPLUS disk-backed join (ADR 0013), through the connector on real files and a
 * real temporary SQLite file: unsorted files give the same chunks, duplicate rows, a contact
 * linked to many students spread through the file, REG_STU_CONTACT rows naming students or
 * contacts the other files lack (rejects), and the temporary folder removed after a run,
 * after an abandoned run and after a failure.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ESchoolPlusConnectorConfig } from '../../src/config/eschoolplus.js';
import { ESchoolPlusConnector } from '../../src/connectors/eschoolplus/index.js';
import { JOIN_DIR_PREFIX } from '../../src/connectors/eschoolplus/join.js';
import type { PullContext } from '../../src/connectors/types.js';
import { ESCHOOL_RELATION_CODES } from '../../src/dev/eschoolplus-adapter.js';
import { writeESchoolFiles } from '../../src/dev/eschoolplus-files.js';
import { generateDistrict } from '../../src/dev/district-generator.js';
import type { RosterChunk } from '../../src/mapping/canonical.js';
import type { Reject } from '../../src/models/types.js';

const logger = pino({ level: 'silent' });
const dirs: string[] = [];
const tempFolder = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), name));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function context(): PullContext & { rejects: Reject[] } {
  const rejects: Reject[] = [];
  return {
    logger,
    signal: new AbortController().signal,
    reject: r => {
      rejects.push(r);
    },
    rejects,
  };
}

function connector(dir: string, tempDir: string, o: Record<string, unknown> = {}) {
  return new ESchoolPlusConnector(
    ESchoolPlusConnectorConfig.parse({
      kind: 'eschoolplus',
      source: { type: 'folder', path: dir },
      files: { studentContacts: { name: 'REG_STU_CONTACT.txt' } },
      links: 'student-contact',
      relationCodes: { M: 'Mother', F: 'Father', A: 'Aunt' },
      pageSize: 2,
      ...o,
    }),
    { logger, tempDir },
  );
}

async function pull(c: ESchoolPlusConnector) {
  const ctx = context();
  await c.readSchools(ctx);
  const chunks: RosterChunk[] = [];
  for await (const chunk of c.readRoster(ctx)) chunks.push(chunk);
  return { chunks, rejects: ctx.rejects };
}

const joinFolders = (tempDir: string) =>
  readdirSync(tempDir).filter(n => n.startsWith(JOIN_DIR_PREFIX));

/** A small file set, deliberately unsorted, with duplicates and dangling references. */
function writeSmallSet(dir: string): void {
  const file = (name: string, lines: string[]) =>
    writeFileSync(join(dir, name), lines.join('\r\n') + '\r\n');
  file('REG.txt', [
    'STUDENT_ID|FIRST_NAME|LAST_NAME|BUILDING|GRADE|CURRENT_STATUS',
    '10|Ten|Pupil|1|03|A',
    '2|Two|Pupil|1|01|A',
    '33|Thirty|Pupil|1|05|A',
    '2|Second|Row|1|01|A', // duplicate: the first row is used
    '5|Five|Gone|1|02|I', // inactive: its contacts are skipped
    '7|Seven|Pupil|1|02|A',
  ]);
  file('REG_BUILDING.txt', ['BUILDING|NAME', '1|North']);
  file('REG_CONTACT.txt', [
    'CONTACT_ID|FIRST_NAME|LAST_NAME|EMAIL',
    '900|Ann|Lee|ann@example.org',
    '50|Bob|Ray|',
    '900|Annie|Duplicate|dup@example.org', // a second row of 900: the first is used
    '7000|Cat|Kim|',
  ]);
  file('REG_CONTACT_PHONE.txt', [
    'CONTACT_ID|PHONE|PHONE_PRIORITY',
    '900|555-0102|2',
    '900|555-0101|1',
    '900|555-0100|1', // same priority as the row before: file order wins
    '50||1', // blank: not a phone
    '50|555-0109|',
  ]);
  file('REG_STU_CONTACT.txt', [
    'STUDENT_ID|CONTACT_ID|CONTACT_TYPE|CONTACT_PRIORITY|RELATION_CODE|WEB_ACCESS',
    '33|900|G|1|M|Y',
    '10|900|G|1|M|Y',
    '2|900|G|1|M|Y',
    '2|50|G|1|F|Y',
    '999|50|G|1|F|Y', // a student REG does not have
    '7|900|G|1|M|Y',
    '10|900|G|1|A|Y', // the same pair again: the first row is used
    '5|7000|G|1|M|Y', // inactive student
    '7|4242|G|1|M|Y', // a contact REG_CONTACT does not have
  ]);
}

describe('eSchoolPLUS join on disk', () => {
  it('joins unsorted files with duplicates: students in id order, a contact linked to many students, first rows used', async () => {
    const dir = tempFolder('gsync-esp-join-files-');
    const tempDir = tempFolder('gsync-esp-join-tmp-');
    writeSmallSet(dir);
    const { chunks, rejects } = await pull(connector(dir, tempDir));

    expect(chunks.map(c => c.students.map(s => s.sourcedId))).toEqual([
      ['2', '7'],
      ['10', '33'],
    ]);
    expect(chunks[0]?.students[0]).toMatchObject({ givenName: 'Two', familyName: 'Pupil' });
    const ann = {
      sourcedId: '900',
      givenName: 'Ann',
      familyName: 'Lee',
      email: 'ann@example.org',
      phone: '555-0101',
      role: 'parent',
      status: 'active',
    };
    const bob = {
      sourcedId: '50',
      givenName: 'Bob',
      familyName: 'Ray',
      phone: '555-0109',
      role: 'parent',
      status: 'active',
    };
    expect(chunks[0]?.guardians).toEqual([bob, ann]);
    expect(chunks[1]?.guardians).toEqual([ann]);
    expect(
      chunks.map(c =>
        c.relationships.map(r => `${r.guardianSourcedId}->${r.studentSourcedId}:${r.relationship}`),
      ),
    ).toEqual([
      ['900->2:Mother', '50->2:Father', '900->7:Mother'],
      ['900->10:Mother', '900->33:Mother'],
    ]);
    // Student 7 names a contact REG_CONTACT lacks: its chunk's links are not supplied.
    expect(chunks.map(c => c.relationshipsSupplied)).toEqual([false, true]);

    expect(rejects.map(r => `${r.entity} ${r.recordId}: ${r.reason}`)).toEqual([
      'student REG.txt line 5: STUDENT_ID 2 appears twice; the first row is used',
      'relationship 50->999 (REG_STU_CONTACT.txt line 6): STUDENT_ID 999 is not in REG.txt (its row is missing or was rejected); row not used',
      'relationship 4242->7 (REG_STU_CONTACT.txt line 10): CONTACT_ID 4242 is not in REG_CONTACT.txt (its row is missing or was rejected)',
    ]);
    expect(joinFolders(tempDir)).toEqual([]);
  });

  it.each([
    ['link mode', true],
    ['link-less, types joined into REG_CONTACT', false],
  ])(
    'gives the same chunks and rejects for shuffled files as for sorted ones (%s)',
    async (_, withStudentContacts) => {
      const district = generateDistrict({ seed: 7, students: 120 });
      const sorted = tempFolder('gsync-esp-join-sorted-');
      const shuffled = tempFolder('gsync-esp-join-shuffled-');
      const tempDir = tempFolder('gsync-esp-join-tmp-');
      const opts = { studentContacts: withStudentContacts, unrepairable: 1 };
      const written = await writeESchoolFiles(district, { dir: sorted, ...opts });
      await writeESchoolFiles(district, { dir: shuffled, ...opts });
      // Reverse every other data line block: a deterministic reordering of each file's rows.
      for (const name of Object.values(written.names)) {
        const path = join(shuffled, name);
        const [header, ...rows] = readFileSync(path, 'latin1').split('\r\n').filter(Boolean);
        const reordered = [
          ...rows.filter((_, i) => i % 2 === 1).reverse(),
          ...rows.filter((_, i) => i % 2 === 0),
        ];
        writeFileSync(path, [header, ...reordered].join('\r\n') + '\r\n', 'latin1');
      }
      const config = {
        format: { endOfRecordMarker: '#!#' },
        relationCodes: ESCHOOL_RELATION_CODES,
        pageSize: 25,
        ...(withStudentContacts ? {} : { links: 'none', files: { studentContacts: undefined } }),
      };
      const a = await pull(connector(sorted, tempDir, config));
      const b = await pull(connector(shuffled, tempDir, config));
      expect(a.chunks.length).toBeGreaterThan(2);
      // Same chunks; a student's links keep REG_STU_CONTACT order, which the shuffle changed.
      const canonical = (chunks: RosterChunk[]) =>
        chunks.map(c => ({
          ...c,
          relationships: [...c.relationships].sort((x, y) =>
            `${x.studentSourcedId} ${x.guardianSourcedId}`.localeCompare(
              `${y.studentSourcedId} ${y.guardianSourcedId}`,
            ),
          ),
        }));
      expect(canonical(b.chunks)).toEqual(canonical(a.chunks));
      // Same rejects up to line numbers (the rows moved).
      const reasons = (rs: Reject[]) =>
        rs
          .map(r => `${r.entity} ${r.recordId.replace(/line[s]? [\d-]+/, 'line ?')}: ${r.reason}`)
          .sort();
      expect(reasons(b.rejects)).toEqual(reasons(a.rejects));
      expect(a.rejects.some(r => r.reason.startsWith('unrepairable row'))).toBe(true);
      expect(joinFolders(tempDir)).toEqual([]);
    },
  );

  it('uses a temporary folder during the run and removes it when the consumer stops early', async () => {
    const dir = tempFolder('gsync-esp-join-files-');
    const tempDir = tempFolder('gsync-esp-join-tmp-');
    writeSmallSet(dir);
    const c = connector(dir, tempDir);
    const ctx = context();
    await c.readSchools(ctx);
    let during: string[] = [];
    for await (const chunk of c.readRoster(ctx)) {
      expect(chunk.students.length).toBeGreaterThan(0);
      during = joinFolders(tempDir);
      break; // abandons the generator
    }
    expect(during).toHaveLength(1);
    expect(joinFolders(tempDir)).toEqual([]);
  });

  describe('link-less: student chunks go out while the contact files are read (ADR 0018)', () => {
    const linkless = { links: 'none', files: { studentContacts: undefined }, pageSize: 25 };
    async function linklessSet() {
      const dir = tempFolder('gsync-esp-join-files-');
      const tempDir = tempFolder('gsync-esp-join-tmp-');
      const district = generateDistrict({ seed: 11, students: 120 });
      await writeESchoolFiles(district, { dir, studentContacts: false });
      return { dir, tempDir };
    }

    it('delivers the first student chunk before REG_CONTACT is read to the end', async () => {
      const { dir, tempDir } = await linklessSet();
      const c = connector(dir, tempDir, linkless);
      const ctx = context();
      await c.readSchools(ctx);
      const it = c.readRoster(ctx)[Symbol.asyncIterator]();
      const r0 = await it.next();
      if (r0.done) throw new Error('no chunk');
      const first: RosterChunk = r0.value;
      expect(first.students).toHaveLength(25);
      // REG is read; the contact file is still being read (its record count is not final).
      const figures = c.stats().figures.records;
      expect(figures['REG.txt']).toBeGreaterThan(0);
      expect(figures['REG_CONTACT.txt'] ?? 0).toBeLessThan(
        readFileSync(join(dir, 'REG_CONTACT.txt'), 'latin1').split('\r\n').filter(Boolean).length -
          1,
      );
      const rest: RosterChunk[] = [];
      for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
      const students = [first, ...rest].flatMap(x => x.students);
      const guardians = rest.flatMap(x => x.guardians);
      expect(students).toHaveLength(120);
      expect(guardians.length).toBeGreaterThan(0);
      // every student chunk comes before the first guardian chunk
      const kinds = [first, ...rest].map(x => (x.students.length ? 'S' : 'G')).join('');
      expect(kinds).toMatch(/^S+G+$/);
      expect(joinFolders(tempDir)).toEqual([]);
    });

    it('stops reading and removes the folder when the consumer stops after a student chunk', async () => {
      const { dir, tempDir } = await linklessSet();
      const c = connector(dir, tempDir, linkless);
      const ctx = context();
      await c.readSchools(ctx);
      for await (const chunk of c.readRoster(ctx)) {
        expect(chunk.students.length).toBeGreaterThan(0);
        expect(joinFolders(tempDir)).toHaveLength(1);
        break;
      }
      expect(joinFolders(tempDir)).toEqual([]);
    });

    it('fails the pull with the file system error when a contact file disappears, after student chunks', async () => {
      const { dir, tempDir } = await linklessSet();
      const c = connector(dir, tempDir, linkless);
      const ctx = context();
      await c.readSchools(ctx);
      unlinkSync(join(dir, 'REG_CONTACT.txt'));
      const got: RosterChunk[] = [];
      const drain = async () => {
        for await (const chunk of c.readRoster(ctx)) got.push(chunk);
      };
      await expect(drain()).rejects.toThrow(/ENOENT/);
      // students may have gone out (the run then fails and deactivates nothing); no account did
      expect(got.every(x => x.guardians.length === 0)).toBe(true);
      expect(joinFolders(tempDir)).toEqual([]);
    });
  });

  it('removes the temporary folder when a file cannot be read mid-pull', async () => {
    const dir = tempFolder('gsync-esp-join-files-');
    const tempDir = tempFolder('gsync-esp-join-tmp-');
    writeSmallSet(dir);
    const c = connector(dir, tempDir);
    const ctx = context();
    await c.readSchools(ctx); // the file set was checked
    unlinkSync(join(dir, 'REG_STU_CONTACT.txt')); // then a file disappears
    const drain = async () => {
      for await (const chunk of c.readRoster(ctx)) expect(chunk).toBeDefined();
    };
    await expect(drain()).rejects.toThrow(/ENOENT/);
    expect(joinFolders(tempDir)).toEqual([]);
  });
});
