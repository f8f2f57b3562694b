/**
 * MongoDB adapter of the sections repository, on the roster store's private mongoose
 * connection: collections `sections` and `section_enrollments` with their own schemas and
 * commented unique indexes, created by `init()`.
 *
 * A chunk is loaded, planned (`planSections`) and written with idempotent upserts keyed by
 * the unique indexes, each carrying a "differs" filter, so re-applying a chunk modifies
 * nothing and `writeCount()` (upserted + modified) stays exact. Two apply jobs never touch
 * the same student's enrollments (a student is in one chunk); a section shared by two chunks
 * is written by both with the same values, which converges (a duplicate-key error on the
 * section upsert race is retried once as a plain update).
 */
import { Schema, type AnyBulkWriteOperation, type Connection, type Model } from 'mongoose';
import { ensureIndexes } from '../mongo/indexes.js';
import type { RunCounts } from '../types.js';
import { countSectionPlan, planSections } from './plan.js';
import type {
  SectionChunk,
  SectionPlan,
  SectionRepository,
  StoredEnrollment,
  StoredSection,
} from './types.js';

export const SECTION_COLLECTIONS = {
  sections: 'sections',
  enrollments: 'section_enrollments',
} as const;

const IN_BATCH = 5000;
const base = {
  versionKey: false,
  id: false,
  strict: 'throw',
  strictQuery: 'throw',
  autoIndex: false,
  autoCreate: false,
} as const;
const requiredString = { type: String, required: true } as const;

export const sectionSchema = new Schema<StoredSection>(
  {
    districtId: requiredString,
    sourcedId: requiredString,
    title: requiredString,
    schoolSourcedId: requiredString,
  },
  { ...base, collection: SECTION_COLLECTIONS.sections },
);
// chunk loads, upsert key, getSection, listSections (sorted): one section per SIS id
sectionSchema.index({ districtId: 1, sourcedId: 1 }, { unique: true, name: 'district_sourcedId' });

export const enrollmentSchema = new Schema<StoredEnrollment>(
  {
    districtId: requiredString,
    sectionSourcedId: requiredString,
    studentSourcedId: requiredString,
    status: { type: String, enum: ['active', 'inactive'], required: true },
  },
  { ...base, collection: SECTION_COLLECTIONS.enrollments },
);
// upsert key (one enrollment per section and student); sectionStudentIds; listEnrollments
enrollmentSchema.index(
  { districtId: 1, sectionSourcedId: 1, studentSourcedId: 1 },
  { unique: true, name: 'district_section_student' },
);
// chunk loads: all enrollments of the chunk's students
enrollmentSchema.index({ districtId: 1, studentSourcedId: 1 }, { name: 'district_student' });

function model<T>(conn: Connection, name: string, schema: Schema<T>): Model<T> {
  return (conn.models[name] as Model<T> | undefined) ?? conn.model<T>(name, schema);
}

function isDuplicateKey(err: unknown): boolean {
  const c = (err as { code?: unknown } | null)?.code;
  if (c === 11000 || c === 11001) return true;
  const w = (err as { writeErrors?: unknown } | null)?.writeErrors;
  const list: unknown[] = Array.isArray(w) ? w : w ? [w] : [];
  return list.some(e => {
    const code = (e as { code?: unknown } | null)?.code;
    return code === 11000 || code === 11001;
  });
}

function written(r: {
  upsertedCount?: number;
  modifiedCount?: number;
  insertedCount?: number;
}): number {
  return (r.upsertedCount ?? 0) + (r.modifiedCount ?? 0) + (r.insertedCount ?? 0);
}

/** Bulk operations of a plan (pure; exported for unit tests). */
export function sectionWriteOps(districtId: string, plan: SectionPlan) {
  const sections: AnyBulkWriteOperation<StoredSection>[] = plan.sections.map(({ section: s }) => ({
    updateOne: {
      filter: { districtId, sourcedId: s.sourcedId },
      update: { $set: { title: s.title, schoolSourcedId: s.schoolSourcedId } },
      upsert: true,
    },
  }));
  const enrollments: AnyBulkWriteOperation<StoredEnrollment>[] = plan.enrollments.map(
    ({ enrollment: e }) => ({
      updateOne: {
        filter: {
          districtId,
          sectionSourcedId: e.sectionSourcedId,
          studentSourcedId: e.studentSourcedId,
        },
        update: { $set: { status: e.status } },
        upsert: true,
      },
    }),
  );
  return { sections, enrollments };
}

/** `SectionRepository` on MongoDB. */
export class MongoSectionRepository implements SectionRepository {
  private readonly sections: Model<StoredSection>;
  private readonly enrollments: Model<StoredEnrollment>;
  private writes = 0;

  constructor(conn: Connection) {
    this.sections = model(conn, 'Section', sectionSchema);
    this.enrollments = model(conn, 'SectionEnrollment', enrollmentSchema);
  }

  async init(): Promise<void> {
    // Creates missing indexes only; never drops one (../mongo/indexes.ts).
    for (const m of [this.sections, this.enrollments] as Model<unknown>[]) await ensureIndexes(m);
  }

  writeCount(): number {
    return this.writes;
  }

  async applyChunk(
    districtId: string,
    chunk: SectionChunk,
    opts: { dryRun: boolean },
  ): Promise<RunCounts> {
    const sectionIds = [...new Set((chunk.sections ?? []).map(s => s.sourcedId))];
    const studentIds = [...new Set(chunk.studentSourcedIds)];
    const [sections, enrollments] = await Promise.all([
      sectionIds.length === 0
        ? []
        : this.sections
            .find({ districtId, sourcedId: { $in: sectionIds } }, { _id: 0 })
            .lean<StoredSection[]>(),
      chunk.enrollments === undefined || studentIds.length === 0
        ? []
        : this.enrollments
            .find({ districtId, studentSourcedId: { $in: studentIds } }, { _id: 0 })
            .lean<StoredEnrollment[]>(),
    ]);
    const plan = planSections(districtId, chunk, { sections, enrollments });
    if (!opts.dryRun) {
      const ops = sectionWriteOps(districtId, plan);
      for (let i = 0; i < ops.sections.length; i += IN_BATCH) {
        const batch = ops.sections.slice(i, i + IN_BATCH);
        try {
          this.writes += written(await this.sections.bulkWrite(batch, { ordered: false }));
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          // Two chunks upserted the same new section at once: the loser updates instead.
          const plain = batch.map(op =>
            'updateOne' in op ? { updateOne: { ...op.updateOne, upsert: false } } : op,
          );
          this.writes += written(await this.sections.bulkWrite(plain, { ordered: false }));
        }
      }
      for (let i = 0; i < ops.enrollments.length; i += IN_BATCH) {
        this.writes += written(
          await this.enrollments.bulkWrite(ops.enrollments.slice(i, i + IN_BATCH), {
            ordered: false,
          }),
        );
      }
    }
    return countSectionPlan(plan);
  }

  async getSection(districtId: string, sourcedId: string): Promise<StoredSection | undefined> {
    const d = await this.sections
      .findOne({ districtId, sourcedId }, { _id: 0 })
      .lean<StoredSection>();
    return d
      ? {
          districtId: d.districtId,
          sourcedId: d.sourcedId,
          title: d.title,
          schoolSourcedId: d.schoolSourcedId,
        }
      : undefined;
  }

  async listSections(districtId: string): Promise<StoredSection[]> {
    const docs = await this.sections
      .find({ districtId }, { _id: 0 })
      .sort({ sourcedId: 1 })
      .lean<StoredSection[]>();
    return docs.map(d => ({
      districtId: d.districtId,
      sourcedId: d.sourcedId,
      title: d.title,
      schoolSourcedId: d.schoolSourcedId,
    }));
  }

  async sectionStudentIds(districtId: string, sectionSourcedId: string): Promise<string[]> {
    const docs = await this.enrollments
      .find({ districtId, sectionSourcedId, status: 'active' }, { studentSourcedId: 1, _id: 0 })
      .sort({ studentSourcedId: 1 })
      .lean<{ studentSourcedId: string }[]>();
    return docs.map(d => d.studentSourcedId);
  }

  async listEnrollments(districtId: string): Promise<StoredEnrollment[]> {
    const docs = await this.enrollments
      .find({ districtId }, { _id: 0 })
      .sort({ sectionSourcedId: 1, studentSourcedId: 1 })
      .lean<StoredEnrollment[]>();
    return docs.map(d => ({
      districtId: d.districtId,
      sectionSourcedId: d.sectionSourcedId,
      studentSourcedId: d.studentSourcedId,
      status: d.status,
    }));
  }
}
