/**
 * Reading course sections and their enrollments from PowerSchool (when the district file
 * sets `connector.sections: true`). Runs once per pull, before the students pages, so that
 * each students chunk can carry its students' complete enrollment lists.
 *
 * Requests (see ./section-payloads.ts for the sources):
 * 1. per school: `GET /ws/v1/school/{id}/section/count`, then pages 1..n of
 *    `GET /ws/v1/school/{id}/section?page=&pagesize=` (page size capped by the plugin's
 *    `section_max_page_size`); unique ids received must equal the count;
 * 2. per distinct course: `GET /ws/v1/course/{id}` for the course name (a 404 leaves the
 *    title without it);
 * 3. per section: `GET /ws/v1/section/{id}/section_enrollment` (not paged by PowerSchool);
 *    `dropped` enrollments are left out.
 * Courses and enrollments are read with at most `concurrency` requests in flight.
 */
import { IncompleteSnapshotError, SisHttpError } from '../../errors.js';
import {
  activeEnrollments,
  mapPowerSchoolSection,
  type SectionSnapshot,
} from '../../mapping/powerschool-sections.js';
import type { Section } from '../../mapping/canonical.js';
import type { PullContext } from '../types.js';
import type { PowerSchoolClient } from './client.js';
import { parseEach, PsResourceCount } from './payloads.js';
import {
  PsCourse,
  PsSection,
  PsSectionEnrollment,
  PsSectionEnrollments,
  PsSectionsPage,
} from './section-payloads.js';

/** Run `fn` over `items`, at most `n` at once; stops taking new items after a failure. */
async function eachLimited<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

/** Figures of one sections read (logged with the pull). */
export interface SectionReadStats {
  schools: number;
  sections: number;
  courses: number;
  enrollments: number;
}

/**
 * Read every section of `schoolIds` and their active enrollments. Bad records are
 * rejects (`entity: 'section' | 'enrollment'`). Throws `IncompleteSnapshotError` when a
 * school's sections differ from its count, `SisHttpError`/`SisPayloadError` as the client.
 */
export async function readPowerSchoolSections(
  client: PowerSchoolClient,
  opts: { schoolIds: readonly string[]; pageSize: number; concurrency: number },
  ctx: PullContext,
): Promise<{ snapshot: SectionSnapshot; stats: SectionReadStats }> {
  const { signal } = ctx;
  const raw: PsSection[] = [];
  for (const schoolId of opts.schoolIds) {
    signal.throwIfAborted();
    const base = `/ws/v1/school/${encodeURIComponent(schoolId)}/section`;
    const count = (await client.get(`${base}/count`, PsResourceCount, { signal })).resource.count;
    const seen = new Set<string>();
    for (let page = 1; page <= Math.ceil(count / opts.pageSize); page++) {
      signal.throwIfAborted();
      const body = await client.get(base, PsSectionsPage, {
        params: { page, pagesize: opts.pageSize },
        signal,
      });
      const { ok, failures } = parseEach(PsSection, body.sections?.section ?? [], ['id']);
      for (const f of failures) {
        seen.add(f.recordId.startsWith('#') ? `page${page}${f.recordId}` : f.recordId);
        ctx.reject({ entity: 'section', recordId: f.recordId, reason: f.reason });
      }
      for (const s of ok) {
        if (seen.has(s.id)) continue;
        seen.add(s.id);
        raw.push(s);
      }
    }
    if (seen.size !== count) {
      throw new IncompleteSnapshotError(
        `PowerSchool sections of school ${schoolId}: received ${seen.size} unique sections, the count endpoint said ${count}`,
      );
    }
  }

  const courseIds = [...new Set(raw.flatMap(s => (s.course_id ? [s.course_id] : [])))];
  const courseNames = new Map<string, string>();
  await eachLimited(courseIds, opts.concurrency, async id => {
    signal.throwIfAborted();
    try {
      const c = await client.get(`/ws/v1/course/${encodeURIComponent(id)}`, PsCourse, { signal });
      if (c.course_name?.trim()) courseNames.set(id, c.course_name.trim());
    } catch (err) {
      if (!(err instanceof SisHttpError && err.status === 404)) throw err;
    }
  });

  const sections = new Map<string, Section>();
  for (const s of raw) {
    const m = mapPowerSchoolSection(s, s.course_id ? courseNames.get(s.course_id) : undefined);
    if (m.ok) sections.set(m.section.sourcedId, m.section);
    else ctx.reject(m.reject);
  }

  const byStudent = new Map<string, string[]>();
  let enrollments = 0;
  await eachLimited([...sections.keys()], opts.concurrency, async sectionId => {
    signal.throwIfAborted();
    const rows = await client.get(
      `/ws/v1/section/${encodeURIComponent(sectionId)}/section_enrollment`,
      PsSectionEnrollments,
      { signal },
    );
    const { ok, failures } = parseEach(PsSectionEnrollment, rows, ['id']);
    for (const f of failures)
      ctx.reject({
        entity: 'enrollment',
        recordId: `${sectionId}:${f.recordId}`,
        reason: f.reason,
      });
    // Trust the URL's section over a row's own section_id (both are SECTIONS.DCID).
    for (const e of activeEnrollments(ok.map(r => ({ ...r, section_id: sectionId })))) {
      const list = byStudent.get(e.studentSourcedId);
      if (list) list.push(sectionId);
      else byStudent.set(e.studentSourcedId, [sectionId]);
      enrollments++;
    }
  });
  for (const list of byStudent.values()) list.sort();

  return {
    snapshot: { sections, byStudent },
    stats: {
      schools: opts.schoolIds.length,
      sections: sections.size,
      courses: courseIds.length,
      enrollments,
    },
  };
}
