/**
 * PowerSchool course sections and enrollments (`connector.sections: true`) against the fake
 * PowerSchool over real HTTP, checked against the section generator's ground truth; and
 * the generator's promise that sections change nothing in a district of the same seed.
 */
import { pino } from 'pino';
import { PowerSchoolConnectorConfig } from '../../src/config/district.js';
import { PowerSchoolConnector } from '../../src/connectors/powerschool/index.js';
import type { PullContext } from '../../src/connectors/types.js';
import { generateDistrict, withdrawStudent } from '../../src/dev/district-generator.js';
import {
  startFakePowerSchool,
  type FakePowerSchool,
  type FakePowerSchoolOptions,
} from '../../src/dev/powerschool-server.js';
import { generateSections, sectionStudents } from '../../src/dev/section-generator.js';
import { SisHttpError } from '../../src/errors.js';
import type { RosterChunk } from '../../src/mapping/canonical.js';
import type { Reject } from '../../src/models/types.js';

const logger = pino({ level: 'silent' });
const servers: FakePowerSchool[] = [];
afterAll(async () => {
  await Promise.all(servers.map(s => s.close()));
});

async function fake(
  d: ReturnType<typeof generateDistrict>,
  opts: FakePowerSchoolOptions,
): Promise<FakePowerSchool> {
  const f = await startFakePowerSchool(d, opts);
  servers.push(f);
  return f;
}

function connector(f: FakePowerSchool, cfg: Record<string, unknown>): PowerSchoolConnector {
  return new PowerSchoolConnector(
    PowerSchoolConnectorConfig.parse({
      kind: 'powerschool',
      baseUrl: f.url,
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
      pageSize: 40,
      retries: 2,
      timeoutMs: 5000,
      ...cfg,
    }),
    {
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      logger,
      client: { minBackoffMs: 5, maxBackoffMs: 20 },
    },
  );
}

async function pull(
  c: PowerSchoolConnector,
): Promise<{ chunks: RosterChunk[]; rejects: Reject[] }> {
  const rejects: Reject[] = [];
  const ctx: PullContext = {
    logger,
    signal: new AbortController().signal,
    // records refused only: exclusions (valid records left out by policy) are tested apart
    reject: r => void (r.kind !== 'excluded' && rejects.push(r)),
  };
  await c.readSchools(ctx);
  const chunks: RosterChunk[] = [];
  for await (const chunk of c.readRoster(ctx)) chunks.push(chunk);
  return { chunks, rejects };
}

describe('section generator', () => {
  it('leaves the district of the same seed unchanged, and is deterministic', () => {
    const a = generateDistrict({ seed: 5, students: 150 });
    const b = generateDistrict({ seed: 5, students: 150 });
    const sa = generateSections(a);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.nextId()).toBe(b.nextId()); // no ids taken from the district's counter
    expect(JSON.stringify(generateSections(b))).toBe(JSON.stringify(sa));
    expect(sa.sections.length).toBeGreaterThan(a.schools.length);
    // every student has one active enrollment per course of their school
    const perStudent = new Map<number, number>();
    for (const e of sa.enrollments)
      if (!e.dropped) perStudent.set(e.student_id, (perStudent.get(e.student_id) ?? 0) + 1);
    expect(perStudent.size).toBe(a.students.length);
  });
});

describe('PowerSchool connector with sections', () => {
  it('attaches each student’s sections and enrollments to their chunk (PowerSchool quirks on)', async () => {
    const d = generateDistrict({ seed: 8, students: 170 });
    withdrawStudent(d, d.students[2]?.id ?? 0);
    const sections = generateSections(d, { classSize: 12, droppedShare: 0.1 });
    const f = await fake(d, {
      sections,
      maxPageSize: 7, // several section pages per school
      quirks: { stringNumbers: true, singleObjectPages: true },
    });
    const c = connector(f, { sections: true });
    expect(c.capabilities.enrollments).toBe(true);
    const { chunks, rejects } = await pull(c);
    expect(rejects).toEqual([]);

    // truth: (section, student) of non-dropped enrollments of students in the snapshot
    const active = new Set(d.students.filter(s => s.enroll_status === 'A').map(s => String(s.id)));
    const truth = new Set<string>();
    for (const s of sections.sections)
      for (const st of sectionStudents(sections, s.id))
        if (active.has(String(st))) truth.add(`${s.id}|${st}`);
    const got = new Set<string>();
    for (const chunk of chunks) {
      const students = new Set(chunk.students.map(s => s.sourcedId));
      const sectionIds = new Set((chunk.sections ?? []).map(s => s.sourcedId));
      expect(chunk.enrollments).toBeDefined();
      for (const e of chunk.enrollments ?? []) {
        expect(students.has(e.studentSourcedId)).toBe(true); // only the chunk's students
        expect(sectionIds.has(e.sectionSourcedId)).toBe(true); // with their sections
        got.add(`${e.sectionSourcedId}|${e.studentSourcedId}`);
      }
    }
    expect(got).toEqual(truth);
    expect(sections.enrollments.some(e => e.dropped)).toBe(true);

    // titles carry the course name; school is the section's school
    const all = new Map(chunks.flatMap(ch => ch.sections ?? []).map(s => [s.sourcedId, s]));
    for (const s of sections.sections) {
      const got1 = all.get(String(s.id));
      if (!got1) continue;
      const course = sections.courses.find(x => x.id === s.course_id);
      expect(got1.title).toBe(`${course?.course_name} – ${s.section_number} (${s.expression})`);
      expect(got1.schoolSourcedId).toBe(String(s.school_id));
    }
    expect(f.stats.byRoute['GET /ws/v1/school/:id/section']).toBeGreaterThan(d.schools.length);
  });

  it('reads no sections when the district file does not ask for them', async () => {
    const d = generateDistrict({ seed: 9, students: 60 });
    const f = await fake(d, { sections: generateSections(d) });
    const c = connector(f, {});
    expect(c.capabilities.enrollments).toBe(false);
    const { chunks } = await pull(c);
    for (const chunk of chunks) {
      expect(chunk.sections).toBeUndefined();
      expect(chunk.enrollments).toBeUndefined();
    }
    expect(f.stats.byRoute['GET /ws/v1/school/:id/section/count']).toBeUndefined();
  });

  it('fails the pull loudly when the plugin has no section access', async () => {
    const d = generateDistrict({ seed: 10, students: 30 });
    const f = await fake(d, {}); // no section routes → 404
    await expect(pull(connector(f, { sections: true }))).rejects.toBeInstanceOf(SisHttpError);
  });
});
