/**
 * MongoDB adapter checks that need no server: the schemas declare the indexes that carry
 * the invariants, the pure plan → bulk-op builders produce the intended updates and survive
 * mongoose's casting under `strict: 'throw'`, and the document → port mappers leak nothing.
 *
 * Casting is exercised through the public `Model.bulkWrite` on a never-opened connection
 * with buffering off: mongoose casts every op (in place) before it reaches the driver, so a
 * rejection saying "before initial connection" means casting passed.
 */
import mongoose, { type Schema } from 'mongoose';
import {
  COLLECTIONS,
  SCHEMAS,
  linkSchema,
  parentSchema,
  registerModels,
  rejectSchema,
  runSchema,
  schoolSchema,
  studentSchema,
} from '../../src/models/mongo/schemas.js';
import {
  isDuplicateKeyError,
  linkFromDoc,
  linkWriteOp,
  parentCreateOp,
  parentFromDoc,
  parentUpdateOp,
  runDocFrom,
  runFromDoc,
  runPatchUpdate,
  studentFromDoc,
  studentWriteOp,
  writtenDocuments,
} from '../../src/models/mongo/store.js';
import type { ParentAccount, StoredStudent, SyncRun } from '../../src/models/types.js';

type IndexSpec = [Record<string, unknown>, Record<string, unknown>];

function indexes(schema: Schema): IndexSpec[] {
  return schema.indexes();
}

function findIndex(schema: Schema, fields: Record<string, 1 | -1>): Record<string, unknown> {
  const hit = indexes(schema).find(([f]) => JSON.stringify(f) === JSON.stringify(fields));
  if (!hit) throw new Error(`no index ${JSON.stringify(fields)}`);
  return hit[1];
}

describe('mongoose schemas declare the invariant-carrying indexes', () => {
  it('students: unique {districtId, sourcedId}', () => {
    expect(findIndex(studentSchema, { districtId: 1, sourcedId: 1 })).toMatchObject({
      unique: true,
    });
    expect(findIndex(studentSchema, { districtId: 1, status: 1 }).unique).toBeUndefined();
  });

  it('schools: unique {districtId, sourcedId}', () => {
    expect(findIndex(schoolSchema, { districtId: 1, sourcedId: 1 }).unique).toBe(true);
  });

  it('parent accounts: unique id, partial unique uniqueId, unique multikey source, email', () => {
    expect(findIndex(parentSchema, { districtId: 1, id: 1 }).unique).toBe(true);
    expect(findIndex(parentSchema, { districtId: 1, uniqueId: 1 })).toEqual(
      expect.objectContaining({
        unique: true,
        partialFilterExpression: { uniqueId: { $exists: true } },
      }),
    );
    expect(
      findIndex(parentSchema, { districtId: 1, 'sources.connector': 1, 'sources.sourcedId': 1 }),
    ).toEqual(
      expect.objectContaining({
        unique: true,
        partialFilterExpression: { 'sources.connector': { $exists: true } },
      }),
    );
    const email = findIndex(parentSchema, { districtId: 1, emailNormalized: 1 });
    expect(email.unique).toBeUndefined(); // ambiguity is reported, not prevented
  });

  it('links: unique {districtId, parentId, studentSourcedId, origin} and a student index', () => {
    expect(
      findIndex(linkSchema, { districtId: 1, parentId: 1, studentSourcedId: 1, origin: 1 }).unique,
    ).toBe(true);
    expect(findIndex(linkSchema, { districtId: 1, studentSourcedId: 1 })).toBeDefined();
  });

  it('runs: unique id and one active run per district via a partial unique index', () => {
    expect(findIndex(runSchema, { id: 1 }).unique).toBe(true);
    expect(findIndex(runSchema, { districtId: 1 })).toEqual(
      expect.objectContaining({ unique: true, partialFilterExpression: { active: true } }),
    );
    expect(findIndex(runSchema, { districtId: 1, createdAt: -1, _id: -1 })).toBeDefined();
  });

  it('rejects: unique {runId, seq} and a de-duplicating identity index', () => {
    expect(findIndex(rejectSchema, { runId: 1, seq: 1 }).unique).toBe(true);
    expect(findIndex(rejectSchema, { runId: 1, entity: 1, recordId: 1, reason: 1 }).unique).toBe(
      true,
    );
  });

  it('every unique index except run ids is prefixed with districtId (shardable)', () => {
    for (const [collection, schema] of Object.entries(SCHEMAS)) {
      for (const [fields, options] of indexes(schema)) {
        if (
          !options.unique ||
          collection === COLLECTIONS.runs ||
          collection === COLLECTIONS.rejects ||
          collection === COLLECTIONS.deferredStudents ||
          collection === COLLECTIONS.heldPages
        ) {
          continue;
        }
        expect([collection, Object.keys(fields)[0]]).toEqual([collection, 'districtId']);
      }
    }
  });

  it('no version key, no id virtual, strict throw, nothing built on model compile', () => {
    for (const schema of Object.values(SCHEMAS)) {
      expect(schema.get('versionKey')).toBe(false);
      expect(schema.get('id')).toBe(false);
      expect(schema.get('strict')).toBe('throw');
      expect(schema.get('strictQuery')).toBe('throw');
      expect(schema.get('autoIndex')).toBe(false);
      expect(schema.get('autoCreate')).toBe(false);
    }
    expect(runSchema.get('minimize')).toBe(false);
  });

  it('models compile on a private connection, not on the global mongoose', async () => {
    const conn = mongoose.createConnection();
    const models = registerModels(conn);
    expect(Object.keys(models).sort()).toEqual(
      [
        'deferredStudents',
        'heldPages',
        'links',
        'parents',
        'rejects',
        'runs',
        'schools',
        'students',
      ].sort(),
    );
    expect(models.parents.collection.collectionName).toBe('parent_accounts');
    expect(mongoose.modelNames()).not.toContain('ParentAccount');
    await conn.close();
  });
});

const student: StoredStudent = {
  districtId: 'd1',
  sourcedId: 's1',
  uniqueId: 'U1',
  givenName: 'Ana',
  familyName: 'Lee',
  schoolSourcedIds: ['sch1'],
  status: 'active',
};

const account: ParentAccount = {
  districtId: 'd1',
  id: 'p1',
  givenName: 'Mia',
  familyName: 'Lee',
  email: 'Mia@X.test',
  emailNormalized: 'mia@x.test',
  role: 'Parent',
  sisRole: 'parent',
  status: 'active',
  origin: 'sis',
  sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
  lockedFields: [],
};

describe('plan → bulk operations', () => {
  it('student upsert: keyed by {districtId, sourcedId}, $set values, $unset absent ones', () => {
    expect(studentWriteOp('d1', student)).toEqual({
      updateOne: {
        filter: { districtId: 'd1', sourcedId: 's1' },
        update: {
          $set: {
            uniqueId: 'U1',
            givenName: 'Ana',
            familyName: 'Lee',
            schoolSourcedIds: ['sch1'],
            status: 'active',
          },
          $unset: { email: '', grade: '' },
        },
        upsert: true,
      },
    });
  });

  it('parent create: insert-if-absent by {districtId, id}, never null optional fields', () => {
    const op = parentCreateOp('d1', account);
    expect(op).toEqual({
      updateOne: {
        filter: { districtId: 'd1', id: 'p1' },
        update: {
          $setOnInsert: {
            givenName: 'Mia',
            familyName: 'Lee',
            email: 'Mia@X.test',
            emailNormalized: 'mia@x.test',
            role: 'Parent',
            sisRole: 'parent',
            status: 'active',
            origin: 'sis',
            sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
            lockedFields: [],
          },
        },
        upsert: true,
      },
    });
    expect(JSON.stringify(op)).not.toContain('uniqueId'); // absent, not null (partial index)
  });

  it('parent update: $set / $unset / $addToSet; nothing to do gives no op', () => {
    expect(
      parentUpdateOp('d1', {
        id: 'p1',
        set: { givenName: 'M', phone: undefined },
        addSources: [{ connector: 'powerschool', sourcedId: 'g2' }],
      }),
    ).toEqual({
      updateOne: {
        filter: { districtId: 'd1', id: 'p1' },
        update: {
          $set: { givenName: 'M' },
          $unset: { phone: '' },
          $addToSet: { sources: { $each: [{ connector: 'powerschool', sourcedId: 'g2' }] } },
        },
      },
    });
    expect(parentUpdateOp('d1', { id: 'p1', set: {}, addSources: [] })).toBeUndefined();
    expect(() =>
      parentUpdateOp('d1', {
        id: 'p1',
        set: { role: 'Admin' } as unknown as Record<string, never>,
        addSources: [],
      }),
    ).toThrow(/role/);
  });

  it('link upsert keyed by {districtId, parentId, studentSourcedId, origin}', () => {
    expect(
      linkWriteOp('d1', {
        districtId: 'd1',
        parentId: 'p1',
        studentSourcedId: 's1',
        origin: 'manual',
        status: 'active',
      }),
    ).toEqual({
      updateOne: {
        filter: { districtId: 'd1', parentId: 'p1', studentSourcedId: 's1', origin: 'manual' },
        update: { $set: { status: 'active' }, $unset: { relationship: '' } },
        upsert: true,
      },
    });
  });

  it('run patches keep `active` in step with status; undefined clears optional fields', () => {
    expect(runPatchUpdate({ status: 'succeeded', error: undefined, counts: {} })).toEqual({
      $set: { status: 'succeeded', counts: {}, active: false },
      $unset: { error: '' },
    });
    expect(runPatchUpdate({ status: 'running' })).toEqual({
      $set: { status: 'running', active: true },
    });
    expect(runPatchUpdate({ rejectCount: undefined })).toEqual({});
  });

  describe('ops pass mongoose casting under strict "throw"', () => {
    const conn = mongoose.createConnection();
    const offline = <T>(name: string, schema: Schema<T>) => {
      const s = schema.clone();
      s.set('bufferCommands', false);
      return conn.model<T>(name, s);
    };
    const Students = offline('OfflineStudent', studentSchema);
    const Parents = offline('OfflineParent', parentSchema);
    const Links = offline('OfflineLink', linkSchema);
    const notConnected = /before initial connection/;

    afterAll(() => conn.close());

    it('student, parent and link ops cast cleanly', async () => {
      const studentOps = [studentWriteOp('d1', { ...student, email: 'a@b.test' })];
      await expect(Students.bulkWrite(studentOps, { ordered: true })).rejects.toThrow(notConnected);
      const parentOps = [
        parentCreateOp('d1', account),
        parentUpdateOp('d1', {
          id: 'p1',
          set: { status: 'inactive', uniqueId: undefined },
          addSources: [{ connector: 'aeries', sourcedId: 'a1' }],
        }),
      ].filter(op => op !== undefined);
      await expect(Parents.bulkWrite(parentOps, { ordered: true })).rejects.toThrow(notConnected);
      const linkOps = [
        linkWriteOp('d1', {
          districtId: 'd1',
          parentId: 'p1',
          studentSourcedId: 's1',
          origin: 'sis',
          relationship: 'Mother',
          status: 'active',
        }),
      ];
      await expect(Links.bulkWrite(linkOps, { ordered: true })).rejects.toThrow(notConnected);
    });

    it('an unknown path is refused by casting (strict "throw")', async () => {
      await expect(
        Links.bulkWrite(
          [
            {
              updateOne: {
                filter: { districtId: 'd1', parentId: 'p1' },
                update: { $set: { nickname: 'x' } },
              },
            },
          ],
          { ordered: true },
        ),
      ).rejects.toThrow(/nickname/);
    });

    it('validation rejects a bad status on insert', async () => {
      const doc = new Students({ ...student, status: 'deleted' });
      await expect(doc.validate()).rejects.toThrow(/status/);
      await expect(new Students(student).validate()).resolves.toBeUndefined();
    });
  });
});

describe('documents → port types leak nothing', () => {
  it('drops _id, __v and subdocument ids; absent optionals stay absent', () => {
    const p = parentFromDoc({
      ...account,
      phone: undefined,
      _id: 'oid',
      __v: 3,
      sources: [{ connector: 'powerschool', sourcedId: 'g1', _id: 'sub' } as never],
    });
    expect(p).toStrictEqual({
      districtId: 'd1',
      id: 'p1',
      givenName: 'Mia',
      familyName: 'Lee',
      email: 'Mia@X.test',
      emailNormalized: 'mia@x.test',
      role: 'Parent',
      sisRole: 'parent',
      status: 'active',
      origin: 'sis',
      sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
      lockedFields: [],
    });
    expect(studentFromDoc({ ...student, _id: 'x', email: null as never })).toStrictEqual(student);
    expect(
      linkFromDoc({
        districtId: 'd1',
        parentId: 'p1',
        studentSourcedId: 's1',
        origin: 'import',
        status: 'inactive',
        _id: 'x',
      }),
    ).toStrictEqual({
      districtId: 'd1',
      parentId: 'p1',
      studentSourcedId: 's1',
      origin: 'import',
      status: 'inactive',
    });
  });

  it('runs round-trip through their document form without bookkeeping fields', () => {
    const run: SyncRun = {
      id: 'r1',
      districtId: 'd1',
      connector: 'powerschool',
      status: 'queued',
      dryRun: true,
      trigger: 'cli',
      createdAt: '2025-01-01T00:00:00.000Z',
      counts: {},
      rejectCount: 0,
      timings: {},
      held: { students: 1, parents: 0, links: 0 },
    };
    const doc = runDocFrom(run);
    expect(doc.active).toBe(true);
    expect(runDocFrom({ ...run, status: 'needs-approval' }).active).toBe(false);
    expect(runFromDoc({ ...doc, rejectSeq: 7, _id: 'x' })).toStrictEqual(run);
  });
});

describe('error helpers', () => {
  it('recognise duplicate-key errors in all driver shapes', () => {
    expect(isDuplicateKeyError({ code: 11000 })).toBe(true);
    expect(isDuplicateKeyError({ code: 1, writeErrors: [{ code: 11000 }] })).toBe(true);
    expect(isDuplicateKeyError({ writeErrors: { code: 11000 } })).toBe(true);
    expect(isDuplicateKeyError({ code: 121 })).toBe(false);
    expect(isDuplicateKeyError(new Error('E11000 in text only'))).toBe(false);
    expect(isDuplicateKeyError(null)).toBe(false);
  });

  it('count inserted + upserted + modified documents', () => {
    expect(writtenDocuments({ insertedCount: 1, upsertedCount: 2, modifiedCount: 3 })).toBe(6);
    expect(writtenDocuments({ insertedCount: 0, upsertedCount: 0, modifiedCount: 0 })).toBe(0);
    expect(writtenDocuments(undefined)).toBe(0);
  });
});
