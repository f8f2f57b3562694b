/**
 * The MongoDB change log without a server: schemas and their indexes, the pure builders
 * (entry documents, list filters, the cursor compare-and-set, the store's replica-set check
 * and link actions), and the writer's operations as mongoose casts and sends them.
 *
 * The writer is exercised on a never-opened connection whose collection methods are replaced
 * by recorders: what they receive is exactly what mongoose would send to the driver after
 * casting under `strict: 'throw'` (defaults on upsert included), with the caller's session.
 */
import mongoose, { type ClientSession, type Schema } from 'mongoose';
import {
  CHANGE_COLLECTIONS,
  CHANGE_SCHEMAS,
  CHANGE_TRANSACTION_OPTIONS,
  advanceOp,
  appendChangesMongo,
  auditKey,
  auditRows,
  changeAuditSchema,
  changeCursorSchema,
  changeDocs,
  changeFilter,
  changeLogModels,
  changeLogSchema,
  changeSeqSchema,
  cursorFromDoc,
  ensureChangeSeq,
  entryFromDoc,
  lockDistrict,
  pageLimit,
} from '../../src/models/changes/mongo.js';
import type { ChangeContext, NewChange } from '../../src/models/changes/types.js';
import { runSchema } from '../../src/models/mongo/schemas.js';
import {
  addLinkAction,
  assertTransactionsSupported,
  runDocFrom,
  runFromDoc,
} from '../../src/models/mongo/store.js';
import type { GuardianLink, SyncRun } from '../../src/models/types.js';

type IndexSpec = [Record<string, unknown>, Record<string, unknown>];

function findIndex(schema: Schema, fields: Record<string, 1 | -1>): Record<string, unknown> {
  const hit = (schema.indexes() as IndexSpec[]).find(
    ([f]) => JSON.stringify(f) === JSON.stringify(fields),
  );
  if (!hit) throw new Error(`no index ${JSON.stringify(fields)}`);
  return hit[1];
}

const RUN: ChangeContext = {
  cause: { kind: 'sync', id: 'run-1', trigger: 'schedule' },
  actor: 'schedule',
};

const changes: NewChange[] = [
  {
    entity: 'parent',
    entityId: 'p1',
    action: 'create',
    parentId: 'p1',
    after: { givenName: 'Mia', sources: ['powerschool:g1'], status: 'active' },
  },
  {
    entity: 'link',
    entityId: 'sis:p1:s1',
    action: 'update',
    parentId: 'p1',
    studentSourcedId: 's1',
    origin: 'sis',
    before: { relationship: 'Mother' },
    after: { relationship: null },
  },
  { entity: 'code', entityId: 'ac_0123456789abcdef', action: 'create', studentSourcedId: 's1' },
];

describe('change-log schemas', () => {
  it('change_log: unique {districtId, seq}; partial cause index; prune by date; no audit index', () => {
    expect(findIndex(changeLogSchema, { districtId: 1, seq: 1 })).toMatchObject({ unique: true });
    // the audit's reads by parent and by student use change_audit (docs/decisions/0019)
    const keys = (changeLogSchema.indexes() as IndexSpec[]).map(([f]) => Object.keys(f));
    expect(keys.filter(k => k.includes('parentId') || k.includes('studentSourcedId'))).toEqual([]);
    expect(findIndex(changeLogSchema, { districtId: 1, 'cause.id': 1 })).toEqual(
      expect.objectContaining({ partialFilterExpression: { 'cause.id': { $exists: true } } }),
    );
    expect(findIndex(changeLogSchema, { districtId: 1, at: 1 }).unique).toBeUndefined();
    // only the sequence is unique; every index starts with districtId (shardable)
    for (const [fields, options] of changeLogSchema.indexes() as IndexSpec[]) {
      expect(Object.keys(fields)[0]).toBe('districtId');
      if (options.unique) expect(fields).toEqual({ districtId: 1, seq: 1 });
    }
  });

  it('change_seq: one counter per district; change_cursors: one per consumer and district', () => {
    expect(findIndex(changeSeqSchema, { districtId: 1 }).unique).toBe(true);
    expect(findIndex(changeCursorSchema, { consumer: 1, districtId: 1 }).unique).toBe(true);
  });

  it('change_audit: one row per district, kind, key and entry; rows of an entry by seq', () => {
    expect(findIndex(changeAuditSchema, { districtId: 1, kind: 1, key: 1, seq: 1 }).unique).toBe(
      true,
    );
    expect(findIndex(changeAuditSchema, { districtId: 1, seq: 1 }).unique).toBeUndefined();
  });

  it('auditRows: one row per parent and per student an entry names', () => {
    expect(
      auditRows('d', [
        { seq: 1, parentId: 'p1' },
        { seq: 2, studentSourcedId: 's1' },
        { seq: 3, parentId: 'p1', studentSourcedId: 's1' },
        { seq: 4 },
      ]),
    ).toEqual([
      { districtId: 'd', kind: 'p', key: 'p1', seq: 1 },
      { districtId: 'd', kind: 's', key: 's1', seq: 2 },
      { districtId: 'd', kind: 'p', key: 'p1', seq: 3 },
      { districtId: 'd', kind: 's', key: 's1', seq: 3 },
    ]);
    expect(auditKey({ parentId: 'p', studentSourcedId: 's', limit: 1 })).toEqual({
      kind: 'p',
      key: 'p',
    });
    expect(auditKey({ studentSourcedId: 's', limit: 1 })).toEqual({ kind: 's', key: 's' });
    expect(auditKey({ entity: 'link', limit: 1 })).toBeUndefined();
  });

  it('no version key, no id virtual, strict throw, nothing built on model compile', () => {
    expect(Object.keys(CHANGE_SCHEMAS).sort()).toEqual(
      ['change_audit', 'change_cursors', 'change_log', 'change_seq'].sort(),
    );
    for (const schema of Object.values(CHANGE_SCHEMAS)) {
      expect(schema.get('versionKey')).toBe(false);
      expect(schema.get('id')).toBe(false);
      expect(schema.get('strict')).toBe('throw');
      expect(schema.get('strictQuery')).toBe('throw');
      expect(schema.get('autoIndex')).toBe(false);
      expect(schema.get('autoCreate')).toBe(false);
    }
    expect(changeLogSchema.get('minimize')).toBe(false);
    expect(changeCursorSchema.get('minimize')).toBe(false);
  });

  it('models compile once per connection, on that connection only', async () => {
    const conn = mongoose.createConnection();
    const m = changeLogModels(conn);
    expect(changeLogModels(conn).entries).toBe(m.entries); // the store and the repository share
    expect(m.entries.collection.collectionName).toBe(CHANGE_COLLECTIONS.entries);
    expect(m.seq.collection.collectionName).toBe('change_seq');
    expect(m.cursors.collection.collectionName).toBe('change_cursors');
    expect(mongoose.modelNames()).not.toContain('ChangeLogEntry');
    await conn.close();
  });

  it('runs store actor, decidedBy and decidedAt and give them back', () => {
    for (const path of ['actor', 'decidedBy', 'decidedAt']) {
      expect(runSchema.path(path)?.instance).toBe('String');
    }
    const run: SyncRun = {
      id: 'r1',
      districtId: 'd1',
      connector: 'powerschool',
      status: 'succeeded',
      dryRun: false,
      trigger: 'api',
      actor: 'api:ops',
      decidedBy: 'cli:ana',
      decidedAt: '2025-02-01T00:00:00.000Z',
      createdAt: '2025-01-01T00:00:00.000Z',
      counts: {},
      rejectCount: 0,
      timings: {},
    };
    expect(runFromDoc({ ...runDocFrom(run), _id: 'x' })).toStrictEqual(run);
    const bare = { ...run, actor: undefined, decidedBy: undefined, decidedAt: undefined };
    const doc = runDocFrom(bare);
    expect(Object.keys(doc)).not.toContain('actor'); // absent, never null
    expect(runFromDoc(doc)).not.toHaveProperty('decidedBy');
  });
});

describe('entry documents', () => {
  it('number changes from firstSeq in order, copy cause and actor, omit absent fields', () => {
    const docs = changeDocs('d1', RUN, changes, '2025-03-01T00:00:00.000Z', 41);
    expect(docs.map(d => d.seq)).toEqual([41, 42, 43]);
    expect(docs[0]).toStrictEqual({
      districtId: 'd1',
      seq: 41,
      at: '2025-03-01T00:00:00.000Z',
      entity: 'parent',
      entityId: 'p1',
      action: 'create',
      parentId: 'p1',
      after: { givenName: 'Mia', sources: ['powerschool:g1'], status: 'active' },
      cause: { kind: 'sync', id: 'run-1', trigger: 'schedule' },
      actor: 'schedule',
    });
    expect(docs[2]).toStrictEqual({
      districtId: 'd1',
      seq: 43,
      at: '2025-03-01T00:00:00.000Z',
      entity: 'code',
      entityId: 'ac_0123456789abcdef',
      action: 'create',
      studentSourcedId: 's1',
      cause: { kind: 'sync', id: 'run-1', trigger: 'schedule' },
      actor: 'schedule',
    });
    // no undefined or null optional fields at the top level or in the cause
    for (const d of docs) {
      const values: unknown[] = [
        ...Object.values(d as unknown as Record<string, unknown>),
        ...Object.values(d.cause as unknown as Record<string, unknown>),
      ];
      for (const v of values) {
        expect(v === undefined || v === null).toBe(false);
      }
    }
    const manual = changeDocs('d1', { cause: { kind: 'manual' }, actor: 'a' }, changes, 'T', 1);
    expect(manual[0]?.cause).toStrictEqual({ kind: 'manual' });
    const notify = changeDocs(
      'd1',
      { cause: { kind: 'import', id: 'pv', notify: false }, actor: 'a' },
      changes,
      'T',
      1,
    );
    expect(notify[0]?.cause).toStrictEqual({ kind: 'import', id: 'pv', notify: false });
  });

  it('documents map back to the entries, without _id', () => {
    const docs = changeDocs('d1', RUN, changes, '2025-03-01T00:00:00.000Z', 1);
    const back = docs.map(d => entryFromDoc({ ...d, _id: 'oid' }));
    expect(back).toStrictEqual(
      changes.map((c, i) => ({
        districtId: 'd1',
        seq: i + 1,
        at: '2025-03-01T00:00:00.000Z',
        ...c,
        cause: { ...RUN.cause },
        actor: 'schedule',
      })),
    );
    expect(
      cursorFromDoc({ consumer: 'core', districtId: 'd1', seq: 3, state: { a: 1 }, _id: 'x' }),
    ).toStrictEqual({ consumer: 'core', districtId: 'd1', seq: 3, state: { a: 1 } });
  });
});

describe('queries', () => {
  it('list filter: seq range, entity, actions, parent, student, cause ids', () => {
    expect(changeFilter('d1', { limit: 10 })).toEqual({ districtId: 'd1', seq: { $gt: 0 } });
    expect(
      changeFilter('d1', {
        afterSeq: 5.7,
        toSeq: 20,
        entity: 'link',
        actions: ['create', 'reactivate'],
        parentId: 'p1',
        studentSourcedId: 's1',
        causeIds: ['run-1'],
        limit: 10,
      }),
    ).toEqual({
      districtId: 'd1',
      seq: { $gt: 5, $lte: 20 },
      entity: 'link',
      action: { $in: ['create', 'reactivate'] },
      parentId: 'p1',
      studentSourcedId: 's1',
      // $exists lets the planner use the partial cause index
      'cause.id': { $in: ['run-1'], $exists: true },
    });
    expect(changeFilter('d1', { afterSeq: -3, limit: 1 }).seq).toEqual({ $gt: 0 });
    expect([pageLimit(0), pageLimit(7.9), pageLimit(1e9)]).toEqual([1, 7, 10_000]);
  });

  it('advance: compare-and-set on seq; upsert only from 0; state kept unless given', () => {
    expect(advanceOp('core', 'd1', 0, 5, undefined, 'T')).toEqual({
      filter: { consumer: 'core', districtId: 'd1', seq: 0 },
      update: { $set: { seq: 5, updatedAt: 'T' }, $setOnInsert: { state: {} } },
      upsert: true,
    });
    expect(advanceOp('core', 'd1', 5, 9, { e: 1 }, 'T')).toEqual({
      filter: { consumer: 'core', districtId: 'd1', seq: 5 },
      update: { $set: { seq: 9, updatedAt: 'T', state: { e: 1 } } },
      upsert: false,
    });
  });
});

describe('store helpers', () => {
  it('init refuses a standalone server, naming the replica-set fix', () => {
    expect(() =>
      assertTransactionsSupported({ setName: 'rs0', isWritablePrimary: true }),
    ).not.toThrow();
    expect(() => assertTransactionsSupported({ msg: 'isdbgrid' })).not.toThrow();
    for (const standalone of [{ isWritablePrimary: true }, { setName: '' }, {}]) {
      expect(() => assertTransactionsSupported(standalone)).toThrow(/needs a replica set/);
    }
    expect(() => assertTransactionsSupported({})).toThrow(/rs0/);
  });

  it('addLink actions follow SQLite: create, update, reactivate, deactivate, or nothing', () => {
    const l: GuardianLink = {
      districtId: 'd1',
      parentId: 'p1',
      studentSourcedId: 's1',
      origin: 'manual',
      relationship: 'Aunt',
      status: 'active',
    };
    expect(addLinkAction(undefined, l)).toBe('create');
    expect(addLinkAction(l, { ...l })).toBeUndefined();
    expect(addLinkAction(l, { ...l, relationship: 'Uncle' })).toBe('update');
    expect(addLinkAction(l, { ...l, relationship: undefined })).toBe('update');
    expect(addLinkAction(l, { ...l, status: 'inactive' })).toBe('deactivate');
    expect(addLinkAction({ ...l, status: 'inactive' }, l)).toBe('reactivate');
  });

  it('writing transactions read a snapshot and commit with majority', () => {
    expect(CHANGE_TRANSACTION_OPTIONS).toEqual({
      readConcern: { level: 'snapshot' },
      writeConcern: { w: 'majority' },
      readPreference: 'primary',
    });
  });
});

describe('the writer as mongoose sends it', () => {
  interface Call {
    method: string;
    args: unknown[];
  }
  const conn = mongoose.createConnection();
  const models = changeLogModels(conn);
  let calls: Call[] = [];
  let counterLast = 0;
  /** A session in a transaction (a class instance: mongoose passes those on uncloned). */
  class FakeSession {
    readonly hasEnded = false;
    inTransaction(): boolean {
      return true;
    }
  }
  const session = new FakeSession() as unknown as ClientSession;

  /** Replace a collection method by a recorder returning `result(args)`. */
  function record(collection: object, method: string, result: (args: unknown[]) => unknown): void {
    Object.defineProperty(collection, method, {
      configurable: true,
      value: (...args: unknown[]) => {
        calls.push({ method, args });
        return Promise.resolve(result(args));
      },
    });
  }

  beforeAll(() => {
    record(models.seq.collection, 'findOneAndUpdate', () => ({ last: counterLast }));
    record(models.seq.collection, 'updateOne', () => ({
      acknowledged: true,
      matchedCount: 1,
      modifiedCount: 1,
      upsertedCount: 0,
      upsertedId: null,
    }));
    record(models.entries.collection, 'insertMany', args => {
      const docs = args[0] as unknown[];
      return {
        acknowledged: true,
        insertedCount: docs.length,
        insertedIds: Object.fromEntries(docs.map((_d, i) => [i, i])),
      };
    });
  });
  beforeEach(() => {
    calls = [];
  });
  afterAll(() => conn.close());

  const optionsOf = (c: Call | undefined, index: number): Record<string, unknown> =>
    (c?.args[index] ?? {}) as Record<string, unknown>;

  it('appends: $inc the counter by n in the session, then insert entries numbered to it', async () => {
    counterLast = 45;
    const last = await appendChangesMongo(models, session, 'd1', RUN, changes, 'T0');
    expect(last).toBe(45);
    expect(calls.map(c => c.method)).toEqual(['findOneAndUpdate', 'insertMany']);
    const [inc, insert] = calls;
    expect(inc?.args[0]).toEqual({ districtId: 'd1' });
    const update = inc?.args[1] as Record<string, Record<string, unknown>>;
    expect(update.$inc).toEqual({ last: 3 });
    // the insert of a new counter never conflicts with $inc (no default on `last` added)
    expect(Object.keys(update.$setOnInsert ?? {})).not.toContain('last');
    expect(optionsOf(inc, 2)).toMatchObject({ upsert: true, returnDocument: 'after' });
    expect(optionsOf(inc, 2).session).toBe(session);

    const docs = insert?.args[0] as Record<string, unknown>[];
    expect(docs.map(d => d.seq)).toEqual([43, 44, 45]);
    expect(docs.map(d => d.at)).toEqual(['T0', 'T0', 'T0']);
    expect(docs[1]).toMatchObject({
      entity: 'link',
      before: { relationship: 'Mother' },
      after: { relationship: null },
      cause: { kind: 'sync', id: 'run-1', trigger: 'schedule' },
    });
    expect(docs[2]).not.toHaveProperty('parentId');
    expect(docs[2]).not.toHaveProperty('before');
    expect(optionsOf(insert, 1).session).toBe(session);
  });

  it('nothing to append touches nothing; outside a transaction it refuses', async () => {
    expect(await appendChangesMongo(models, session, 'd1', RUN, [], 'T')).toBe(0);
    expect(calls).toEqual([]);
    const idle = { inTransaction: () => false } as unknown as ClientSession;
    await expect(appendChangesMongo(models, idle, 'd1', RUN, changes, 'T')).rejects.toThrow(
      /inside the write transaction/,
    );
    await expect(lockDistrict(models, idle, 'd1')).rejects.toThrow(/inside a transaction/);
    expect(calls).toEqual([]);
  });

  it('an entry with an unknown field is refused by casting (strict "throw")', async () => {
    const bad = [{ ...changes[0], colour: 'red' } as unknown as NewChange];
    counterLast = 1;
    await expect(appendChangesMongo(models, session, 'd1', RUN, bad, 'T')).resolves.toBe(1);
    // changeDocs copies only known fields: the stray one never reaches the insert
    const docs = calls[1]?.args[0] as Record<string, unknown>[];
    expect(docs[0]).not.toHaveProperty('colour');
    await expect(
      models.entries.insertMany([{ ...changeDocs('d1', RUN, changes, 'T', 1)[0], colour: 'red' }], {
        session,
      }),
    ).rejects.toThrow(/colour/);
  });

  it('the district lock writes the counter in the session, creating it at most once', async () => {
    await lockDistrict(models, session, 'd2');
    expect(calls).toHaveLength(1);
    const [lock] = calls;
    expect(lock?.method).toBe('updateOne');
    expect(lock?.args[0]).toEqual({ districtId: 'd2' });
    const update = lock?.args[1] as Record<string, Record<string, unknown>>;
    expect(update.$inc).toEqual({ txns: 1 });
    expect(update.$setOnInsert).toEqual({ last: 0 });
    expect(optionsOf(lock, 2)).toMatchObject({ upsert: true });
    expect(optionsOf(lock, 2).session).toBe(session);

    calls = [];
    await ensureChangeSeq(models, 'd3');
    await ensureChangeSeq(models, 'd3');
    expect(calls).toHaveLength(1); // cached per process
    const ensure = calls[0];
    expect(ensure?.args[1]).toEqual({ $setOnInsert: { last: 0, txns: 0 } });
    expect(optionsOf(ensure, 2)).toMatchObject({ upsert: true });
    expect(optionsOf(ensure, 2).session).toBeUndefined(); // outside the transaction
  });
});
