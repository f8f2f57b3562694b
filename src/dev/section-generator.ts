/**
 * Seeded course sections and enrollments for a synthetic district (issue 5: section code
 * exports). Kept apart from `generateDistrict` on purpose: it uses its own PRNG stream
 * (derived from the district's seed) and its own id ranges, and never calls
 * `district.nextId()`, so generating sections changes nothing in the district itself —
 * the same seed gives the same students and contacts with or without sections.
 *
 * Shape: per school, `coursesPerSchool` courses of the school's level; per course,
 * `ceil(students / classSize)` sections; every student of the school is enrolled in one
 * section of each course. About 3 % of enrollments are `dropped` (the student then also
 * holds an active enrollment in another section of that course when there is one).
 */
import type { SyntheticDistrict } from './district-generator.js';
import { mulberry32 } from './prng.js';

/** `GET /ws/v1/course/{id}` record. */
export interface PsCourseRow {
  id: number;
  course_number: string;
  course_name: string;
}

/** `GET /ws/v1/section/{id}` record (SECTIONS). */
export interface PsSectionRow {
  id: number;
  school_id: number;
  course_id: number;
  section_number: string;
  expression: string;
}

/** `section_enrollment` record (CC). */
export interface PsSectionEnrollmentRow {
  id: number;
  section_id: number;
  student_id: number;
  dropped: boolean;
}

export interface SyntheticSections {
  courses: PsCourseRow[];
  /** Sorted by id. */
  sections: PsSectionRow[];
  /** Sorted by section id, then id. */
  enrollments: PsSectionEnrollmentRow[];
}

export interface GenerateSectionsOptions {
  /** Courses per school (default 4). */
  coursesPerSchool?: number;
  /** Target students per section (default 25). */
  classSize?: number;
  /** Share of dropped enrollments (default 0.03). */
  droppedShare?: number;
}

/** Id ranges, far above the district's own ids and the fake server's derived ids. */
export const SECTION_ID_BASE = {
  course: 600_000_000,
  section: 700_000_000,
  enrollment: 800_000_000,
};

const COURSES: Record<'elem' | 'secondary', readonly string[]> = {
  elem: ['Reading & Writing', 'Mathématiques', 'Science', 'Música', 'Art', 'Physical Education'],
  secondary: [
    'Algebra I',
    'English Language Arts',
    'Biology',
    'Español I',
    'World History',
    'Français II',
    'Chemistry',
    'Computer Science',
  ],
};

/**
 * Sections of `d`'s schools and enrollments of its students (status 'A' or not: the
 * connector reads enrollments of any student; the sync keeps only those in its chunks).
 * Deterministic in `d.seed`, the schools, the students and `opts`.
 */
export function generateSections(
  d: SyntheticDistrict,
  opts: GenerateSectionsOptions = {},
): SyntheticSections {
  const perSchool = opts.coursesPerSchool ?? 4;
  const classSize = Math.max(1, opts.classSize ?? 25);
  const dropped = opts.droppedShare ?? 0.03;
  const rng = mulberry32((d.seed ^ 0x5ec7105e) >>> 0);
  let courseN = 0;
  let sectionN = 0;
  let enrollmentN = 0;
  const out: SyntheticSections = { courses: [], sections: [], enrollments: [] };

  const bySchool = new Map<number, number[]>();
  for (const s of d.students) {
    const list = bySchool.get(s.school_id);
    if (list) list.push(s.id);
    else bySchool.set(s.school_id, [s.id]);
  }

  for (const school of d.schools) {
    const students = bySchool.get(school.id) ?? [];
    const pool = /Elementary/.test(school.name) ? COURSES.elem : COURSES.secondary;
    const names = [...pool];
    for (let c = 0; c < Math.min(perSchool, names.length); c++) {
      // pick without replacement
      const k = rng.int(0, names.length - 1);
      const name = names.splice(k, 1)[0] ?? 'Course';
      const course: PsCourseRow = {
        id: SECTION_ID_BASE.course + ++courseN,
        course_number: `${school.school_number}-${String(c + 1).padStart(2, '0')}`,
        course_name: name,
      };
      out.courses.push(course);
      const n = Math.max(1, Math.ceil(students.length / classSize));
      const sectionIds: number[] = [];
      for (let i = 0; i < n; i++) {
        const section: PsSectionRow = {
          id: SECTION_ID_BASE.section + ++sectionN,
          school_id: school.id,
          course_id: course.id,
          section_number: String(i + 1),
          expression: `${rng.int(1, 7)}(A)`,
        };
        out.sections.push(section);
        sectionIds.push(section.id);
      }
      for (const studentId of students) {
        const first = sectionIds[rng.int(0, sectionIds.length - 1)] ?? 0;
        const drop = rng.chance(dropped);
        out.enrollments.push({
          id: SECTION_ID_BASE.enrollment + ++enrollmentN,
          section_id: first,
          student_id: studentId,
          dropped: drop,
        });
        if (drop && sectionIds.length > 1) {
          const other = sectionIds.find(id => id !== first) ?? first;
          out.enrollments.push({
            id: SECTION_ID_BASE.enrollment + ++enrollmentN,
            section_id: other,
            student_id: studentId,
            dropped: false,
          });
        }
      }
    }
  }
  out.enrollments.sort((a, b) => a.section_id - b.section_id || a.id - b.id);
  return out;
}

/** Ground truth: student DCIDs actively (not dropped) enrolled in a section, sorted. */
export function sectionStudents(s: SyntheticSections, sectionId: number): number[] {
  const ids = new Set<number>();
  for (const e of s.enrollments)
    if (e.section_id === sectionId && !e.dropped) ids.add(e.student_id);
  return [...ids].sort((a, b) => a - b);
}
