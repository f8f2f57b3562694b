/**
 * The change-log contract (design invariant 13, docs/decisions/0003-change-log.md): every
 * roster store adapter (SQLite, MongoDB) must log exactly the same entries for the same
 * writes, and its `ChangeLogRepository` must read, count, page, move cursors and prune them
 * the same way.
 *
 * The suite writes through the `RosterStore` methods that log (`reconcileChunk`,
 * `applyDeactivations`, `addLink`, `createParent`) and, where an explicit timestamp or a code
 * entry is needed, through the adapter's own writer (`appendChanges` / `appendChangesMongo`,
 * picked from `store.handle()`), inside a transaction as the stores do.
 */
import { StoreConflictError } from '../../src/errors.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import {
  AUDIT_INDEX_CONSUMER,
  SYSTEM_CHANGE,
  codeRef,
  linkRef,
  type ChangeContext,
  type ChangeCounts,
  type ChangeEntry,
  type ChangeLogRepository,
  type ChangeQuery,
  type NewChange,
} from '../../src/models/changes/types.js';
import type {
  ChunkPlan,
  ChunkPlanner,
  GuardianLink,
  RosterStore,
  StoredStudent,
} from '../../src/models/types.js';
import { keys, link, parent, plan, student } from './store.contract.js';

const A = 'district-a';
const B = 'district-b';
const C = 'district-c';
const PS = 'powerschool';

const RUN1: ChangeContext = {
  cause: { kind: 'sync', id: 'run-1', trigger: 'schedule' },
  actor: 'schedule',
};
const RUN2: ChangeContext = {
  cause: { kind: 'sync', id: 'run-2', trigger: 'api' },
  actor: 'api:ops',
};
const APPROVAL: ChangeContext = { cause: { kind: 'approval', id: 'run-1' }, actor: 'cli:ana' };
const MANUAL: ChangeContext = { cause: { kind: 'manual' }, actor: 'api:admin' };
const IMPORT: ChangeContext = {
  cause: { kind: 'import', id: 'pv-1', trigger: 'parents', notify: true },
  actor: 'api:admin',
};

const FUTURE = '9999-12-31T23:59:59.999Z';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Matches any ISO timestamp (where the time is the store's). */
const anIso: unknown = expect.stringMatching(ISO);

/** A planner that ignores the state and returns `p`. */
const fixed =
  (p: ChunkPlan): ChunkPlanner =>
  () =>
    p;

/** Order-independent JSON of a flat record (undefined fields dropped). */
function canonical(record: object): string {
  return JSON.stringify(
    Object.entries(record)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
}

/**
 * A diffing planner over students and sis links (stand-in for the real one): create the
 * missing, update or reactivate the changed, leave equal records alone.
 */
function diffPlanner(desired: StoredStudent[], links: GuardianLink[]): ChunkPlanner {
  return state => {
    const have = new Map(state.students.map(s => [s.sourcedId, s]));
    const students: ChunkPlan['students'] = [];
    for (const d of desired) {
      const e = have.get(d.sourcedId);
      if (!e) students.push({ action: 'create', record: d });
      else if (canonical(e) !== canonical(d))
        students.push({ action: e.status === 'active' ? 'update' : 'reactivate', record: d });
    }
    const haveLinks = new Map(
      state.links.map(l => [linkRef(l.origin, l.parentId, l.studentSourcedId), l]),
    );
    const out: ChunkPlan['links'] = [];
    for (const l of links) {
      const e = haveLinks.get(linkRef(l.origin, l.parentId, l.studentSourcedId));
      if (!e) out.push({ action: 'add', link: l });
      else if (e.status !== l.status) out.push({ action: 'reactivate', link: l });
      else if (canonical(e) !== canonical(l)) out.push({ action: 'update', link: l });
    }
    return plan({ students, links: out });
  };
}

/** An expected entry: `at` is any ISO timestamp; absent optional fields must be absent. */
function entry(
  districtId: string,
  seq: number,
  context: ChangeContext,
  change: NewChange,
): ChangeEntry {
  const e = {
    districtId,
    seq,
    at: anIso as string,
    ...change,
    cause: { ...context.cause },
    actor: context.actor,
  };
  return e;
}

/** Entity/action counts of entries (the reference for countByCause / countRange). */
function countOf(entries: ChangeEntry[]): ChangeCounts {
  const out: ChangeCounts = {};
  for (const e of entries) {
    const t = (out[e.entity] ??= {});
    t[e.action] = (t[e.action] ?? 0) + 1;
  }
  return out;
}

/**
 * Append entries with the adapter's own writer inside a transaction of the store's
 * connection (SQLite: BEGIN IMMEDIATE; MongoDB: `withChangeTransaction`), with explicit `at`.
 */
async function appendVia(
  store: RosterStore,
  districtId: string,
  context: ChangeContext,
  changes: NewChange[],
  at: string,
): Promise<number> {
  const h = store.handle();
  if (h.kind === 'sqlite') {
    const { appendChanges } = await import('../../src/models/changes/sqlite.js');
    return h.db
      .transaction(() => appendChanges(h.db, districtId, context, changes, at))
      .immediate();
  }
  const { appendChangesMongo, changeLogModels, withChangeTransaction } =
    await import('../../src/models/changes/mongo.js');
  const models = changeLogModels(h.connection);
  return withChangeTransaction(models, districtId, session =>
    appendChangesMongo(models, session, districtId, context, changes, at),
  );
}

/** The audit index rows of `districtId` as `kind:key:seq`, sorted (adapter-specific peek). */
async function auditRowsOf(store: RosterStore, districtId: string): Promise<string[]> {
  const h = store.handle();
  let rows: { kind: string; key: string; seq: number }[];
  if (h.kind === 'sqlite') {
    rows = h.db
      .prepare('SELECT kind, key, seq FROM change_audit WHERE district_id = ?')
      .all(districtId) as { kind: string; key: string; seq: number }[];
  } else {
    const { changeLogModels } = await import('../../src/models/changes/mongo.js');
    rows = await changeLogModels(h.connection)
      .audit.find({ districtId }, { _id: 0, kind: 1, key: 1, seq: 1 })
      .lean<{ kind: string; key: string; seq: number }[]>();
  }
  return rows.map(r => `${r.kind}:${r.key}:${r.seq}`).sort();
}

/** The audit index rows the entries call for (`kind:key:seq`, sorted). */
function expectedAuditRows(entries: readonly ChangeEntry[]): string[] {
  const out: string[] = [];
  for (const e of entries) {
    if (e.parentId !== undefined) out.push(`p:${e.parentId}:${e.seq}`);
    if (e.studentSourcedId !== undefined) out.push(`s:${e.studentSourcedId}:${e.seq}`);
  }
  return out.sort();
}

/**
 * Make the store refuse to move the audit index's cursor of `districtId` past `seq` (a real
 * failure of the store inside the indexer's transaction, after it wrote the batch's rows:
 * SQLite a TEMP trigger that aborts, MongoDB a collection validator). Returns the undo.
 */
async function failAuditCursorPast(
  store: RosterStore,
  districtId: string,
  seq: number,
): Promise<() => Promise<void>> {
  const h = store.handle();
  if (h.kind === 'sqlite') {
    const body = `WHEN NEW.consumer = '${AUDIT_INDEX_CONSUMER}' AND NEW.district_id = '${districtId}'
        AND NEW.seq > ${seq} BEGIN SELECT RAISE(ABORT, 'injected: audit cursor refused'); END`;
    h.db.exec(`CREATE TEMP TRIGGER fail_audit_insert BEFORE INSERT ON change_cursors ${body};
      CREATE TEMP TRIGGER fail_audit_update BEFORE UPDATE ON change_cursors ${body};`);
    return () => {
      h.db.exec('DROP TRIGGER temp.fail_audit_insert; DROP TRIGGER temp.fail_audit_update;');
      return Promise.resolve();
    };
  }
  const db = h.connection.db;
  if (!db) throw new Error('MongoDB store is not connected');
  await db.command({
    collMod: 'change_cursors',
    validator: {
      $or: [
        { consumer: { $ne: AUDIT_INDEX_CONSUMER } },
        { districtId: { $ne: districtId } },
        { seq: { $lte: seq } },
      ],
    },
    validationLevel: 'strict',
    validationAction: 'error',
  });
  return async () => {
    await db.command({ collMod: 'change_cursors', validator: {}, validationLevel: 'off' });
  };
}

/**
 * Register the change-log contract for one adapter. `open` returns a fresh, initialised,
 * empty roster store for each test; `close` closes (and disposes of) it.
 */
export function runChangeLogContract(
  name: string,
  open: () => Promise<RosterStore>,
  close: (store: RosterStore) => Promise<void>,
): void {
  describe(`change-log contract: ${name}`, () => {
    let store: RosterStore;
    let repo: ChangeLogRepository;
    let opened: RosterStore | undefined;

    beforeEach(async () => {
      opened = undefined;
      store = await open();
      opened = store;
      repo = await changeLogRepository(store);
    });
    afterEach(async () => {
      if (opened) await close(opened);
    });

    const all = (districtId = A, q: Partial<ChangeQuery> = {}): Promise<ChangeEntry[]> =>
      repo.list(districtId, { limit: 10_000, ...q });
    const seqsOf = (entries: ChangeEntry[]): number[] => entries.map(e => e.seq);
    const range = (from: number, to: number): number[] =>
      Array.from({ length: to - from + 1 }, (_, i) => from + i);

    /** The first chunk of the reconcile tests (5 entries) for `districtId`. */
    function firstPlan(districtId: string): ChunkPlan {
      return plan({
        parentCreates: [
          parent(
            'p1',
            {
              uniqueId: 'G-1',
              email: 'Mom@Example.com',
              emailNormalized: 'mom@example.com',
              sources: [{ connector: PS, sourcedId: 'g1' }],
            },
            districtId,
          ),
          parent('p2', { sources: [{ connector: PS, sourcedId: 'g2' }] }, districtId),
        ],
        students: [
          { action: 'create', record: student('s1', {}, districtId) },
          {
            action: 'create',
            record: student('s2', { email: 's2@x.test', grade: undefined }, districtId),
          },
          { action: 'create', record: student('s3', { status: 'inactive' }, districtId) },
        ],
        links: [{ action: 'add', link: link('p1', 's1', { relationship: 'Mother' }, districtId) }],
      });
    }
    const firstKeys = keys({
      studentSourcedIds: ['s1', 's2', 's3'],
      guardianSourcedIds: ['g1', 'g2'],
    });

    function firstEntries(districtId: string): ChangeEntry[] {
      return [
        entry(districtId, 1, RUN1, {
          entity: 'parent',
          entityId: 'p1',
          action: 'create',
          parentId: 'p1',
          after: {
            uniqueId: 'G-1',
            givenName: 'Parent p1',
            familyName: 'Family',
            email: 'Mom@Example.com',
            role: 'Parent',
            sisRole: 'parent',
            status: 'active',
            origin: 'sis',
            sources: ['powerschool:g1'],
          },
        }),
        entry(districtId, 2, RUN1, {
          entity: 'parent',
          entityId: 'p2',
          action: 'create',
          parentId: 'p2',
          after: {
            givenName: 'Parent p2',
            familyName: 'Family',
            role: 'Parent',
            sisRole: 'parent',
            status: 'active',
            origin: 'sis',
            sources: ['powerschool:g2'],
          },
        }),
        entry(districtId, 3, RUN1, {
          entity: 'student',
          entityId: 's1',
          action: 'create',
          studentSourcedId: 's1',
          after: {
            uniqueId: 'U-s1',
            givenName: 'Given s1',
            familyName: 'Family',
            schoolSourcedIds: ['sch1'],
            grade: '05',
            status: 'active',
          },
        }),
        entry(districtId, 4, RUN1, {
          entity: 'student',
          entityId: 's2',
          action: 'create',
          studentSourcedId: 's2',
          after: {
            uniqueId: 'U-s2',
            givenName: 'Given s2',
            familyName: 'Family',
            email: 's2@x.test',
            schoolSourcedIds: ['sch1'],
            status: 'active',
          },
        }),
        entry(districtId, 5, RUN1, {
          entity: 'student',
          entityId: 's3',
          action: 'create',
          studentSourcedId: 's3',
          after: {
            uniqueId: 'U-s3',
            givenName: 'Given s3',
            familyName: 'Family',
            schoolSourcedIds: ['sch1'],
            grade: '05',
            status: 'inactive',
          },
        }),
        entry(districtId, 6, RUN1, {
          entity: 'link',
          entityId: linkRef('sis', 'p1', 's1'),
          action: 'create',
          parentId: 'p1',
          studentSourcedId: 's1',
          origin: 'sis',
          after: { relationship: 'Mother', status: 'active' },
        }),
      ];
    }

    describe('reconcileChunk', () => {
      it('logs one entry per change with entity, id, action, fields, cause and actor', async () => {
        expect(await repo.lastSeq(A)).toBe(0);
        await store.reconcileChunk(A, firstKeys, fixed(firstPlan(A)), {
          dryRun: false,
          change: RUN1,
        });
        const first = await all();
        expect(first).toStrictEqual(firstEntries(A));
        expect(new Set(first.map(e => e.at)).size).toBe(1); // one write, one timestamp
        expect(await repo.lastSeq(A)).toBe(6);

        await store.reconcileChunk(
          A,
          firstKeys,
          fixed(
            plan({
              parentUpdates: [
                {
                  action: 'match',
                  update: {
                    id: 'p1',
                    set: {},
                    addSources: [{ connector: PS, sourcedId: 'g1b' }],
                  },
                },
                {
                  action: 'update',
                  update: {
                    id: 'p2',
                    set: { givenName: 'Pat', phone: '555-0100' },
                    addSources: [],
                  },
                },
              ],
              students: [
                { action: 'update', record: student('s1', { familyName: 'Changed' }) },
                { action: 'update', record: student('s2', { grade: undefined }) },
                { action: 'reactivate', record: student('s3') },
              ],
              links: [{ action: 'update', link: link('p1', 's1', { relationship: 'Father' }) }],
            }),
          ),
          { dryRun: false, change: RUN2 },
        );
        expect((await all()).slice(6)).toStrictEqual([
          entry(A, 7, RUN2, {
            entity: 'parent',
            entityId: 'p1',
            action: 'match',
            parentId: 'p1',
            before: { sources: ['powerschool:g1'] },
            after: { sources: ['powerschool:g1', 'powerschool:g1b'] },
          }),
          entry(A, 8, RUN2, {
            entity: 'parent',
            entityId: 'p2',
            action: 'update',
            parentId: 'p2',
            before: { givenName: 'Parent p2', phone: null },
            after: { givenName: 'Pat', phone: '555-0100' },
          }),
          entry(A, 9, RUN2, {
            entity: 'student',
            entityId: 's1',
            action: 'update',
            studentSourcedId: 's1',
            before: { familyName: 'Family' },
            after: { familyName: 'Changed' },
          }),
          entry(A, 10, RUN2, {
            entity: 'student',
            entityId: 's2',
            action: 'update',
            studentSourcedId: 's2',
            before: { email: 's2@x.test' },
            after: { email: null },
          }),
          entry(A, 11, RUN2, {
            entity: 'student',
            entityId: 's3',
            action: 'reactivate',
            studentSourcedId: 's3',
            before: { status: 'inactive' },
            after: { status: 'active' },
          }),
          entry(A, 12, RUN2, {
            entity: 'link',
            entityId: linkRef('sis', 'p1', 's1'),
            action: 'update',
            parentId: 'p1',
            studentSourcedId: 's1',
            origin: 'sis',
            before: { relationship: 'Mother' },
            after: { relationship: 'Father' },
          }),
        ]);
        expect(seqsOf(await all())).toEqual(range(1, 12));
        expect(await repo.lastSeq(A)).toBe(12);
      });

      it('numbers entries per district: district B starts at 1 too', async () => {
        await store.reconcileChunk(A, firstKeys, fixed(firstPlan(A)), {
          dryRun: false,
          change: RUN1,
        });
        await store.reconcileChunk(B, firstKeys, fixed(firstPlan(B)), {
          dryRun: false,
          change: RUN1,
        });
        await store.reconcileChunk(
          A,
          keys({ studentSourcedIds: ['s9'] }),
          fixed(plan({ students: [{ action: 'create', record: student('s9') }] })),
          { dryRun: false, change: RUN1 },
        );
        expect(await all(B)).toStrictEqual(firstEntries(B));
        expect(seqsOf(await all(A))).toEqual(range(1, 7));
        expect((await all(A)).every(e => e.districtId === A)).toBe(true);
        expect(await repo.lastSeq(A)).toBe(7);
        expect(await repo.lastSeq(B)).toBe(6);
        expect(await repo.districts()).toEqual([A, B]);
      });

      it('a dry run logs nothing', async () => {
        const returned = await store.reconcileChunk(A, firstKeys, fixed(firstPlan(A)), {
          dryRun: true,
          change: RUN1,
        });
        expect(returned.students).toHaveLength(3);
        expect(await all()).toEqual([]);
        expect(await repo.lastSeq(A)).toBe(0);
        expect(await repo.districts()).toEqual([]);
      });

      it('re-running the planner over the now-current state logs nothing', async () => {
        const desired = [student('s1'), student('s2', { email: 'x@y.test' }), student('s3')];
        const links = [link('p1', 's1'), link('p1', 's2', { relationship: 'Aunt' })];
        const k = keys({ studentSourcedIds: ['s1', 's2', 's3'] });
        await store.reconcileChunk(A, k, diffPlanner(desired, links), {
          dryRun: false,
          change: RUN1,
        });
        expect(await repo.lastSeq(A)).toBe(5);
        const second = await store.reconcileChunk(A, k, diffPlanner(desired, links), {
          dryRun: false,
          change: RUN2,
        });
        expect(second.students).toEqual([]);
        expect(second.links).toEqual([]);
        expect(await repo.lastSeq(A)).toBe(5);
        expect(await repo.countByCause(A, ['run-2'])).toEqual({});
      });

      it('a re-delivered plan whose records are already in place logs nothing', async () => {
        await store.reconcileChunk(A, firstKeys, fixed(firstPlan(A)), {
          dryRun: false,
          change: RUN1,
        });
        const writes = store.writeCount();
        await store.reconcileChunk(A, firstKeys, fixed(firstPlan(A)), {
          dryRun: false,
          change: RUN2,
        });
        expect(store.writeCount()).toBe(writes);
        expect(await repo.lastSeq(A)).toBe(6);
        expect(await all(A, { causeIds: ['run-2'] })).toEqual([]);
      });

      it('records a plan writes that its keys did not load are logged with their real before-values', async () => {
        await store.reconcileChunk(
          A,
          keys(),
          fixed(
            plan({
              parentCreates: [parent('p1'), parent('p2')],
              students: [{ action: 'create', record: student('s1') }],
              links: [{ action: 'add', link: link('p1', 's1') }],
            }),
          ),
          { dryRun: false, change: RUN1 },
        );
        // the keys load nothing: the store reads the plan's targets itself
        await store.reconcileChunk(
          A,
          keys(),
          fixed(
            plan({
              parentCreates: [parent('p1')], // already there: a no-op, not a second create
              parentUpdates: [
                {
                  action: 'update',
                  update: { id: 'p2', set: { givenName: 'Pam' }, addSources: [] },
                },
              ],
              students: [{ action: 'update', record: student('s1', { grade: '06' }) }],
              links: [{ action: 'add', link: link('p1', 's1', { relationship: 'Mother' }) }],
            }),
          ),
          { dryRun: false, change: RUN2 },
        );
        expect(await all(A, { afterSeq: 4 })).toStrictEqual([
          entry(A, 5, RUN2, {
            entity: 'parent',
            entityId: 'p2',
            action: 'update',
            parentId: 'p2',
            before: { givenName: 'Parent p2' },
            after: { givenName: 'Pam' },
          }),
          entry(A, 6, RUN2, {
            entity: 'student',
            entityId: 's1',
            action: 'update',
            studentSourcedId: 's1',
            before: { grade: '05' },
            after: { grade: '06' },
          }),
          entry(A, 7, RUN2, {
            entity: 'link',
            entityId: linkRef('sis', 'p1', 's1'),
            action: 'update',
            parentId: 'p1',
            studentSourcedId: 's1',
            origin: 'sis',
            before: { relationship: null },
            after: { relationship: 'Mother' },
          }),
        ]);
      });

      it('a planner that throws rolls back both rows and entries', async () => {
        await store.reconcileChunk(
          A,
          keys(),
          fixed(plan({ students: [{ action: 'create', record: student('s1') }] })),
          { dryRun: false, change: RUN1 },
        );
        const before = await all();
        await expect(
          store.reconcileChunk(
            A,
            keys({ studentSourcedIds: ['s1', 's2'] }),
            () => {
              throw new Error('planner exploded');
            },
            { dryRun: false, change: RUN2 },
          ),
        ).rejects.toThrow('planner exploded');
        expect(await all()).toEqual(before);
        expect(await repo.lastSeq(A)).toBe(1);
        expect((await store.getStudents(A)).map(s => s.sourcedId)).toEqual(['s1']);
      });

      it('a write that fails part-way rolls back the chunk and its entries', async () => {
        await store.createParent(parent('p9', { uniqueId: 'U-9' }), MANUAL);
        await expect(
          store.reconcileChunk(
            A,
            keys({ studentSourcedIds: ['s5'] }),
            fixed(
              plan({
                students: [{ action: 'create', record: student('s5') }],
                parentCreates: [parent('p10', { uniqueId: 'U-9' })],
              }),
            ),
            { dryRun: false, change: RUN1 },
          ),
        ).rejects.toBeInstanceOf(StoreConflictError);
        expect(await store.getStudents(A)).toEqual([]);
        expect((await store.getParents(A)).map(p => p.id)).toEqual(['p9']);
        expect(seqsOf(await all())).toEqual([1]);
        expect(await repo.lastSeq(A)).toBe(1);
      });
    });

    describe('applyDeactivations', () => {
      beforeEach(async () => {
        await store.reconcileChunk(
          A,
          keys(),
          fixed(
            plan({
              students: [
                { action: 'create', record: student('s1') },
                { action: 'create', record: student('s2', { status: 'inactive' }) },
                { action: 'create', record: student('s3') },
              ],
              parentCreates: [parent('p1'), parent('p2', { status: 'inactive' })],
              links: [
                { action: 'add', link: link('p1', 's1') },
                { action: 'add', link: link('p1', 's2', { status: 'inactive' }) },
                { action: 'add', link: link('p1', 's3') },
              ],
            }),
          ),
          { dryRun: false },
        );
        await store.addLink(link('p1', 's1', { origin: 'manual' }));
      });

      it('logs only records whose status changed; a second call logs nothing', async () => {
        const base = await repo.lastSeq(A);
        expect(base).toBe(9);
        const d = {
          studentSourcedIds: ['s3', 's1', 's2', 'nope', 's1'],
          parentIds: ['p2', 'p1', 'nope'],
          links: [
            { parentId: 'p1', studentSourcedId: 's3' },
            { parentId: 'p1', studentSourcedId: 's2' },
            { parentId: 'p1', studentSourcedId: 's1' },
            { parentId: 'p1', studentSourcedId: 's3' },
          ],
        };
        const writes = store.writeCount();
        expect(await store.applyDeactivations(A, d, APPROVAL)).toBe(5);
        expect(store.writeCount() - writes).toBe(5);
        const status = { before: { status: 'active' }, after: { status: 'inactive' } };
        expect(await all(A, { afterSeq: base })).toStrictEqual([
          entry(A, 10, APPROVAL, {
            entity: 'student',
            entityId: 's1',
            action: 'deactivate',
            studentSourcedId: 's1',
            ...status,
          }),
          entry(A, 11, APPROVAL, {
            entity: 'student',
            entityId: 's3',
            action: 'deactivate',
            studentSourcedId: 's3',
            ...status,
          }),
          entry(A, 12, APPROVAL, {
            entity: 'parent',
            entityId: 'p1',
            action: 'deactivate',
            parentId: 'p1',
            ...status,
          }),
          entry(A, 13, APPROVAL, {
            entity: 'link',
            entityId: linkRef('sis', 'p1', 's3'),
            action: 'deactivate',
            parentId: 'p1',
            studentSourcedId: 's3',
            origin: 'sis',
            ...status,
          }),
          entry(A, 14, APPROVAL, {
            entity: 'link',
            entityId: linkRef('sis', 'p1', 's1'),
            action: 'deactivate',
            parentId: 'p1',
            studentSourcedId: 's1',
            origin: 'sis',
            ...status,
          }),
        ]);
        // the manual link is not sync's to remove
        expect(
          (await store.getLinks(A)).find(l => l.origin === 'manual' && l.studentSourcedId === 's1')
            ?.status,
        ).toBe('active');

        expect(await store.applyDeactivations(A, d, APPROVAL)).toBe(0);
        expect(await repo.lastSeq(A)).toBe(14);
        expect(await repo.countByCause(A, ['run-1'])).toEqual({
          student: { deactivate: 2 },
          parent: { deactivate: 1 },
          link: { deactivate: 2 },
        });
      });

      it('a district with nothing to deactivate gets no entries and is not listed', async () => {
        const none = { studentSourcedIds: ['s1'], parentIds: ['p1'], links: [] };
        expect(await store.applyDeactivations(C, none, APPROVAL)).toBe(0);
        expect(await repo.lastSeq(C)).toBe(0);
        expect(await repo.districts()).toEqual([A]);
      });
    });

    describe('addLink and createParent', () => {
      it('addLink logs create → update → deactivate → reactivate; a no-op logs nothing', async () => {
        const aunt = link('p1', 's1', { origin: 'manual', relationship: 'Aunt' });
        const ref = linkRef('manual', 'p1', 's1');
        const ids = {
          entity: 'link' as const,
          entityId: ref,
          parentId: 'p1',
          studentSourcedId: 's1',
          origin: 'manual' as const,
        };
        expect(await store.addLink(aunt, MANUAL)).toBe(true);
        expect(await store.addLink(aunt, MANUAL)).toBe(false);
        expect(await store.addLink({ ...aunt, relationship: 'Uncle' }, MANUAL)).toBe(true);
        const off = { ...aunt, relationship: 'Uncle', status: 'inactive' as const };
        expect(await store.addLink(off, MANUAL)).toBe(true);
        expect(await store.addLink(off, MANUAL)).toBe(false);
        expect(await store.addLink({ ...aunt, relationship: undefined }, MANUAL)).toBe(true);
        expect(await all()).toStrictEqual([
          entry(A, 1, MANUAL, {
            ...ids,
            action: 'create',
            after: { relationship: 'Aunt', status: 'active' },
          }),
          entry(A, 2, MANUAL, {
            ...ids,
            action: 'update',
            before: { relationship: 'Aunt' },
            after: { relationship: 'Uncle' },
          }),
          entry(A, 3, MANUAL, {
            ...ids,
            action: 'deactivate',
            before: { status: 'active' },
            after: { status: 'inactive' },
          }),
          entry(A, 4, MANUAL, {
            ...ids,
            action: 'reactivate',
            before: { relationship: 'Uncle', status: 'inactive' },
            after: { relationship: null, status: 'active' },
          }),
        ]);
        expect(await store.getLinks(A)).toEqual([link('p1', 's1', { origin: 'manual' })]);
      });

      it('concurrent addLink calls: one entry per change, numbers gap-free', async () => {
        const same = link('p1', 's1', { origin: 'access-code' });
        const results = await Promise.all([
          store.addLink(same, MANUAL),
          store.addLink(same, MANUAL),
          ...['s2', 's3', 's4', 's5', 's6'].map(s =>
            store.addLink(link('p1', s, { origin: 'manual' }), MANUAL),
          ),
        ]);
        expect(results.slice(0, 2).sort()).toEqual([false, true]);
        expect(results.slice(2)).toEqual([true, true, true, true, true]);
        const entries = await all();
        expect(seqsOf(entries)).toEqual(range(1, 6));
        expect(entries.map(e => e.entityId).sort()).toEqual(
          [
            linkRef('access-code', 'p1', 's1'),
            ...['s2', 's3', 's4', 's5', 's6'].map(s => linkRef('manual', 'p1', s)),
          ].sort(),
        );
        expect(entries.every(e => e.action === 'create')).toBe(true);
      });

      it('createParent logs a create; a refused account logs nothing', async () => {
        const account = parent('p7', {
          origin: 'import',
          uniqueId: 'U-7',
          email: 'a@b.test',
          emailNormalized: 'a@b.test',
          sisRole: undefined,
        });
        await store.createParent(account, IMPORT);
        expect(await all()).toStrictEqual([
          entry(A, 1, IMPORT, {
            entity: 'parent',
            entityId: 'p7',
            action: 'create',
            parentId: 'p7',
            after: {
              uniqueId: 'U-7',
              givenName: 'Parent p7',
              familyName: 'Family',
              email: 'a@b.test',
              role: 'Parent',
              status: 'active',
              origin: 'import',
              sources: [],
            },
          }),
        ]);
        await expect(
          store.createParent(parent('p8', { uniqueId: 'U-7' }), IMPORT),
        ).rejects.toBeInstanceOf(StoreConflictError);
        await expect(store.createParent(account, IMPORT)).rejects.toBeInstanceOf(
          StoreConflictError,
        );
        expect((await store.getParents(A)).map(p => p.id)).toEqual(['p7']);
        expect(await repo.lastSeq(A)).toBe(1);
      });

      it('writes that name no context log cause system, actor system', async () => {
        await store.createParent(parent('p1'));
        await store.addLink(link('p1', 's1', { origin: 'manual' }));
        const entries = await all();
        expect(entries.map(e => [e.cause, e.actor])).toEqual([
          [SYSTEM_CHANGE.cause, 'system'],
          [SYSTEM_CHANGE.cause, 'system'],
        ]);
      });
    });

    describe('reading: list, counts, districts', () => {
      const N_STUDENTS = 60;
      const N_PARENTS = 30;
      const sid = (i: number): string => `s${String(i).padStart(3, '0')}`;
      const pid = (i: number): string => `p${String(i).padStart(2, '0')}`;
      let full: ChangeEntry[];

      beforeEach(async () => {
        const studentIds = Array.from({ length: N_STUDENTS }, (_, i) => sid(i));
        await store.reconcileChunk(
          A,
          keys({ studentSourcedIds: studentIds }),
          fixed(
            plan({
              parentCreates: Array.from({ length: N_PARENTS }, (_, i) => parent(pid(i))),
              students: studentIds.map(s => ({ action: 'create' as const, record: student(s) })),
              links: studentIds.map((s, i) => ({
                action: 'add' as const,
                link: link(pid(i % N_PARENTS), s),
              })),
            }),
          ),
          { dryRun: false, change: RUN1 },
        );
        await store.reconcileChunk(
          A,
          keys({ studentSourcedIds: studentIds }),
          fixed(
            plan({
              students: studentIds.map(s => ({
                action: 'update' as const,
                record: student(s, { familyName: 'Renamed' }),
              })),
              links: studentIds
                .filter((_, i) => i % 2 === 0)
                .map((s, j) => ({
                  action: 'update' as const,
                  link: link(pid((2 * j) % N_PARENTS), s, { relationship: 'Guardian' }),
                })),
            }),
          ),
          { dryRun: false, change: RUN2 },
        );
        for (let i = 0; i < 20; i++) {
          await store.addLink(link(pid(i), sid(i + 1), { origin: 'manual' }), MANUAL);
        }
        await store.reconcileChunk(
          B,
          keys(),
          fixed(plan({ students: [{ action: 'create', record: student('s000', {}, B) }] })),
          { dryRun: false, change: RUN1 },
        );
        full = await all();
      });

      it('holds every change of the district once, numbered 1..n', () => {
        // 30 parents + 60 students + 60 links, 60 student + 30 link updates, 20 manual links
        expect(full).toHaveLength(260);
        expect(seqsOf(full)).toEqual(range(1, 260));
        expect(full.every(e => e.districtId === A)).toBe(true);
      });

      it('pages with afterSeq/limit return each entry exactly once, in order', async () => {
        const paged: ChangeEntry[] = [];
        let after = 0;
        for (let pages = 0; pages < 100; pages++) {
          const page = await repo.list(A, { afterSeq: after, limit: 7 });
          if (page.length === 0) break;
          expect(page.length).toBeLessThanOrEqual(7);
          paged.push(...page);
          after = page[page.length - 1]?.seq ?? after;
        }
        expect(paged).toEqual(full);
        expect(await repo.list(A, { limit: 1 })).toEqual(full.slice(0, 1));
        expect(await repo.list(A, { afterSeq: 10, toSeq: 20, limit: 100 })).toEqual(
          full.slice(10, 20),
        );
        expect(await repo.list(A, { afterSeq: 258, limit: 100 })).toEqual(full.slice(258));
        expect(await repo.list(A, { afterSeq: 260, limit: 100 })).toEqual([]);
      });

      it('filters by entity, actions, parentId, studentSourcedId and causeIds (AND)', async () => {
        const cases: [Partial<ChangeQuery>, (e: ChangeEntry) => boolean][] = [
          [{ entity: 'link' }, e => e.entity === 'link'],
          [{ actions: ['update'] }, e => e.action === 'update'],
          [{ actions: ['create', 'update'] }, e => ['create', 'update'].includes(e.action)],
          [{ actions: [] }, () => false],
          [
            { entity: 'student', actions: ['update'] },
            e => e.entity === 'student' && e.action === 'update',
          ],
          [{ parentId: 'p02' }, e => e.parentId === 'p02'],
          [{ studentSourcedId: 's007' }, e => e.studentSourcedId === 's007'],
          [{ causeIds: ['run-2'] }, e => e.cause.id === 'run-2'],
          [{ causeIds: ['run-1', 'run-2'] }, e => e.cause.id !== undefined],
          [{ causeIds: [] }, () => false],
          [
            { causeIds: ['run-1'], entity: 'link', afterSeq: 100, toSeq: 200 },
            e => e.cause.id === 'run-1' && e.entity === 'link' && e.seq > 100 && e.seq <= 200,
          ],
          [
            { parentId: 'p01', entity: 'link', actions: ['create'] },
            e => e.parentId === 'p01' && e.entity === 'link' && e.action === 'create',
          ],
        ];
        for (const [q, keep] of cases) {
          const expected = full.filter(keep);
          expect([q, await all(A, q)]).toEqual([q, expected]);
        }
        // spot checks that the filters select something real
        expect(full.filter(e => e.parentId === 'p02').map(e => e.entity)).toEqual([
          'parent',
          'link',
          'link',
          'link',
          'link',
          'link',
        ]);
        expect(
          full.filter(e => e.studentSourcedId === 's007').map(e => [e.entity, e.action]),
        ).toEqual([
          ['student', 'create'],
          ['link', 'create'],
          ['student', 'update'],
          ['link', 'create'],
        ]);
        expect(full.filter(e => e.cause.id === 'run-2')).toHaveLength(90);
      });

      it('countByCause and countRange count by entity and action', async () => {
        expect(await repo.countByCause(A, ['run-1'])).toEqual({
          parent: { create: 30 },
          student: { create: 60 },
          link: { create: 60 },
        });
        expect(await repo.countByCause(A, ['run-1', 'run-2'])).toEqual({
          parent: { create: 30 },
          student: { create: 60, update: 60 },
          link: { create: 60, update: 30 },
        });
        expect(await repo.countByCause(A, [])).toEqual({});
        expect(await repo.countByCause(A, ['nope'])).toEqual({});
        expect(await repo.countByCause(B, ['run-1'])).toEqual({ student: { create: 1 } });
        expect(await repo.countRange(A, 0, 260)).toEqual(countOf(full));
        expect(await repo.countRange(A, 240, 260)).toEqual({ link: { create: 20 } });
        expect(await repo.countRange(A, 10, 20)).toEqual(countOf(full.slice(10, 20)));
        expect(await repo.countRange(A, 20, 20)).toEqual({});
      });

      it('lastSeq and districts', async () => {
        expect(await repo.lastSeq(A)).toBe(260);
        expect(await repo.lastSeq(B)).toBe(1);
        expect(await repo.lastSeq(C)).toBe(0);
        expect(await repo.districts()).toEqual([A, B]);
      });
    });

    describe('consumer cursors', () => {
      it('a new cursor is at 0 with empty state', async () => {
        expect(await repo.cursor('core', A)).toEqual({
          consumer: 'core',
          districtId: A,
          seq: 0,
          state: {},
        });
        expect(await repo.cursors('core')).toEqual([]);
      });

      it('advance is a compare-and-set; setState keeps the position', async () => {
        const pos = async (consumer: string, districtId: string) => {
          const c = await repo.cursor(consumer, districtId);
          return [c.seq, c.state];
        };
        expect(await repo.advance('core', A, 0, 5, { batches: 1 })).toBe(true);
        const c1 = await repo.cursor('core', A);
        expect(c1).toEqual({
          consumer: 'core',
          districtId: A,
          seq: 5,
          state: { batches: 1 },
          updatedAt: anIso,
        });
        // a second advance from the old position lost the race
        expect(await repo.advance('core', A, 0, 7, { batches: 9 })).toBe(false);
        expect(await repo.advance('core', A, 4, 7)).toBe(false);
        expect(await pos('core', A)).toEqual([5, { batches: 1 }]);
        // without a state the state stays; with one it is replaced
        expect(await repo.advance('core', A, 5, 9)).toBe(true);
        expect(await pos('core', A)).toEqual([9, { batches: 1 }]);
        expect(await repo.advance('core', A, 9, 10, { other: true })).toBe(true);
        expect(await pos('core', A)).toEqual([10, { other: true }]);
        await repo.setState('core', A, { lastError: 'timeout', attempts: 2 });
        expect(await pos('core', A)).toEqual([10, { lastError: 'timeout', attempts: 2 }]);
        // setState on a cursor that does not exist yet creates it at 0; advance from 0 works
        await repo.setState('core', B, { note: 'x' });
        expect(await pos('core', B)).toEqual([0, { note: 'x' }]);
        expect(await repo.advance('core', B, 0, 3)).toBe(true);
        expect(await pos('core', B)).toEqual([3, { note: 'x' }]);
        // consumers are independent
        expect(await repo.advance('webhooks', A, 0, 2, {})).toBe(true);
        expect((await repo.cursors('core')).map(c => [c.districtId, c.seq])).toEqual([
          [A, 10],
          [B, 3],
        ]);
        expect((await repo.cursors('webhooks')).map(c => [c.districtId, c.seq])).toEqual([[A, 2]]);
        expect(await pos('webhooks', A)).toEqual([2, {}]);
      });

      it('concurrent advances from the same position: exactly one wins', async () => {
        const fresh = await Promise.all([4, 5, 6].map(to => repo.advance('core', A, 0, to)));
        expect(fresh.filter(Boolean)).toHaveLength(1);
        const won = (await repo.cursor('core', A)).seq;
        expect([4, 5, 6]).toContain(won);
        const again = await Promise.all([10, 11].map(to => repo.advance('core', A, won, to)));
        expect(again.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('prune', () => {
      it('keeps the newest create/reactivate of active links and accounts; deletes the rest', async () => {
        await store.createParent(parent('p1'), MANUAL); // 1 keep
        await store.createParent(parent('p2'), MANUAL); // 2
        await store.applyDeactivations(
          A,
          { studentSourcedIds: [], parentIds: ['p2'], links: [] },
          MANUAL,
        ); // 3
        const l1 = link('p1', 's1', { origin: 'manual' });
        await store.addLink(l1, MANUAL); // 4
        await store.addLink({ ...l1, status: 'inactive' }, MANUAL); // 5
        await store.addLink(l1, MANUAL); // 6 keep (reactivate)
        const l2 = link('p1', 's2', { origin: 'manual', relationship: 'Aunt' });
        await store.addLink(l2, MANUAL); // 7 keep
        await store.addLink({ ...l2, relationship: 'Uncle' }, MANUAL); // 8
        const l3 = link('p1', 's3', { origin: 'manual' });
        await store.addLink(l3, MANUAL); // 9
        await store.addLink({ ...l3, status: 'inactive' }, MANUAL); // 10
        await store.reconcileChunk(
          A,
          keys({ studentSourcedIds: ['s1'] }),
          fixed(plan({ students: [{ action: 'create', record: student('s1') }] })),
          { dryRun: false, change: RUN1 },
        ); // 11
        await store.addLink(link('p1', 's1'), RUN1); // 12 keep: the sis link is another link
        await store.createParent(parent('p1', {}, B), MANUAL); // district B: untouched
        expect(await repo.lastSeq(A)).toBe(12);

        expect(await repo.prune(A, '2000-01-01T00:00:00.000Z')).toBe(0);
        expect(await repo.prune(A, FUTURE)).toBe(8);
        expect(seqsOf(await all())).toEqual([1, 6, 7, 12]);
        expect((await all()).map(e => [e.entityId, e.action])).toEqual([
          ['p1', 'create'],
          [linkRef('manual', 'p1', 's1'), 'reactivate'],
          [linkRef('manual', 'p1', 's2'), 'create'],
          [linkRef('sis', 'p1', 's1'), 'create'],
        ]);
        expect(await repo.lastSeq(A)).toBe(12);
        expect(seqsOf(await all(B))).toEqual([1]);
        expect(await repo.prune(A, FUTURE)).toBe(0);

        // numbering goes on after a prune; deactivating an account frees its create entry
        await store.addLink(link('p1', 's4', { origin: 'manual' }), MANUAL);
        expect(seqsOf(await all()).at(-1)).toBe(13);
        await store.applyDeactivations(
          A,
          { studentSourcedIds: [], parentIds: ['p1'], links: [] },
          MANUAL,
        );
        expect(await repo.prune(A, FUTURE)).toBe(2); // p1 create, p1 deactivate
        expect(seqsOf(await all())).toEqual([6, 7, 12, 13]);
      });

      it('deletes only entries written before `before`; newer entries supersede older ones', async () => {
        await store.addLink(link('p1', 's1', { origin: 'manual' }), MANUAL); // 1, at now
        const old = '2000-01-01T00:00:00.000Z';
        const late = '2999-01-01T00:00:00.000Z';
        await appendVia(
          store,
          A,
          MANUAL,
          [
            {
              entity: 'link',
              entityId: linkRef('manual', 'p1', 's1'),
              action: 'reactivate',
              parentId: 'p1',
              studentSourcedId: 's1',
              origin: 'manual',
              before: { status: 'inactive' },
              after: { status: 'active' },
            },
          ],
          late,
        ); // 2
        await appendVia(
          store,
          A,
          RUN1,
          ['s5', 's6'].map(s => ({
            entity: 'student' as const,
            entityId: s,
            action: 'update' as const,
            studentSourcedId: s,
            before: { grade: '04' },
            after: { grade: '05' },
          })),
          old,
        ); // 3, 4
        await appendVia(
          store,
          A,
          MANUAL,
          [
            {
              entity: 'link',
              entityId: linkRef('manual', 'p1', 's9'),
              action: 'create',
              parentId: 'p1',
              studentSourcedId: 's9',
              origin: 'manual',
              after: { status: 'active' },
            },
          ],
          old,
        ); // 5: a link that is not active
        const entries = await all();
        expect(entries.map(e => e.at).slice(1)).toEqual([late, old, old, old]);

        expect(await repo.prune(A, '1999-12-31T00:00:00.000Z')).toBe(0);
        expect(await repo.prune(A, '2500-01-01T00:00:00.000Z')).toBe(4);
        expect(seqsOf(await all())).toEqual([2]);
        expect(await repo.lastSeq(A)).toBe(5);
      });
    });

    describe('audit index (docs/decisions/0019): complete whatever the consumer did', () => {
      const sid = (i: number): string => `s${String(i).padStart(2, '0')}`;
      const pid = (i: number): string => `p${i}`;

      /** Three writes of district A (and one of B): parents, students, links, updates. */
      async function writeHistory(round: number): Promise<void> {
        const ids = Array.from({ length: 12 }, (_, i) => sid(i));
        await store.reconcileChunk(
          A,
          keys({ studentSourcedIds: ids }),
          diffPlanner(
            ids.map(s => student(s, { familyName: `Round${round}` })),
            ids.map((s, i) =>
              link(pid(i % 5), s, { relationship: round % 2 === 0 ? 'Mother' : 'Guardian' }),
            ),
          ),
          { dryRun: false, change: round === 0 ? RUN1 : RUN2 },
        );
        if (round === 0)
          for (let i = 0; i < 5; i++) await store.createParent(parent(pid(i)), IMPORT);
        await store.addLink(link(pid(round % 5), sid(round + 3), { origin: 'manual' }), MANUAL);
        await store.reconcileChunk(
          B,
          keys(),
          fixed(plan({ students: [{ action: 'create', record: student(`b${round}`, {}, B) }] })),
          { dryRun: false, change: RUN1 },
        );
      }

      /** Every keyed read of the audit equals the log's own entries, filtered. */
      async function expectCompleteAnswers(opts: { pruned?: boolean } = {}): Promise<void> {
        const full = await all();
        expect(full.length).toBeGreaterThan(opts.pruned ? 0 : 20);
        const queries: Partial<ChangeQuery>[] = [];
        for (let i = 0; i < 6; i++) {
          queries.push({ parentId: pid(i) }, { parentId: pid(i), entity: 'link' });
          queries.push({ parentId: pid(i), entity: 'parent', actions: ['create', 'reactivate'] });
        }
        for (let i = 0; i < 13; i++)
          queries.push({ studentSourcedId: sid(i) }, { studentSourcedId: sid(i), entity: 'link' });
        queries.push({ parentId: pid(1), studentSourcedId: sid(1) });
        queries.push({ parentId: pid(2), afterSeq: 10, toSeq: 30 });
        queries.push({ studentSourcedId: sid(4), causeIds: ['run-2'] });
        for (const q of queries) {
          const expected = full.filter(
            e =>
              (q.parentId === undefined || e.parentId === q.parentId) &&
              (q.studentSourcedId === undefined || e.studentSourcedId === q.studentSourcedId) &&
              (q.entity === undefined || e.entity === q.entity) &&
              (q.actions === undefined || q.actions.includes(e.action)) &&
              (q.afterSeq === undefined || e.seq > q.afterSeq) &&
              (q.toSeq === undefined || e.seq <= q.toSeq) &&
              (q.causeIds === undefined || q.causeIds.includes(e.cause.id ?? '')),
          );
          expect([q, await all(A, q)]).toEqual([q, expected]);
        }
        // paging by parent crosses the index/tail boundary: each entry once, in order
        const p0 = full.filter(e => e.parentId === pid(0));
        expect(p0.length).toBeGreaterThan(opts.pruned ? 0 : 4);
        const paged: ChangeEntry[] = [];
        let after = 0;
        for (let pages = 0; pages < 50; pages++) {
          const page = await repo.list(A, { parentId: pid(0), afterSeq: after, limit: 2 });
          if (page.length === 0) break;
          paged.push(...page);
          after = page[page.length - 1]?.seq ?? after;
        }
        expect(paged).toEqual(p0);
      }

      it('a district with no consumer running: nothing indexed, every answer complete', async () => {
        await writeHistory(0);
        await writeHistory(1);
        expect((await repo.cursor(AUDIT_INDEX_CONSUMER, A)).seq).toBe(0);
        expect(await auditRowsOf(store, A)).toEqual([]);
        await expectCompleteAnswers();
      });

      it('while the consumer trails: the indexed part and the tail after it, nothing missed', async () => {
        await writeHistory(0);
        expect(await repo.indexAudit(A, { maxEntries: 7 })).toEqual({ from: 0, to: 7 });
        expect(await repo.indexAudit(A, { maxEntries: 100, toSeq: 13 })).toEqual({
          from: 7,
          to: 13,
        });
        expect((await repo.cursor(AUDIT_INDEX_CONSUMER, A)).seq).toBe(13);
        const full = await all();
        expect(await auditRowsOf(store, A)).toEqual(
          expectedAuditRows(full.filter(e => e.seq <= 13)),
        );
        await expectCompleteAnswers();
        // more writes while it trails
        await writeHistory(1);
        await writeHistory(2);
        await expectCompleteAnswers();
        expect(await repo.indexAudit(B, { maxEntries: 1 })).toEqual({ from: 0, to: 1 });
        expect((await repo.cursor(AUDIT_INDEX_CONSUMER, A)).seq).toBe(13); // per district
      });

      it('after the consumer caught up: all indexed once, new writes found; prune removes rows', async () => {
        await writeHistory(0);
        await writeHistory(1);
        let r = await repo.indexAudit(A, { maxEntries: 10 });
        while (r.to > r.from) r = await repo.indexAudit(A, { maxEntries: 10 });
        const last = await repo.lastSeq(A);
        expect(r).toEqual({ from: last, to: last });
        expect((await repo.cursor(AUDIT_INDEX_CONSUMER, A)).seq).toBe(last);
        expect(await auditRowsOf(store, A)).toEqual(expectedAuditRows(await all()));
        await expectCompleteAnswers();
        await writeHistory(2); // not indexed yet: found in the tail
        await expectCompleteAnswers();
        // a lost cursor (restore, manual reset) repeats batches: the rows stay one per entry
        expect(await repo.advance(AUDIT_INDEX_CONSUMER, A, last, 0)).toBe(true);
        r = await repo.indexAudit(A, { maxEntries: 1000 });
        expect(r).toEqual({ from: 0, to: await repo.lastSeq(A) });
        expect(await auditRowsOf(store, A)).toEqual(expectedAuditRows(await all()));
        await expectCompleteAnswers();
        // prune deletes the rows of the entries it deletes, and answers stay exact
        expect(await repo.prune(A, FUTURE)).toBeGreaterThan(0);
        expect(await auditRowsOf(store, A)).toEqual(expectedAuditRows(await all()));
        await expectCompleteAnswers({ pruned: true });
      });

      it('a consumer that fails mid-batch leaves rows and cursor as they were; the next pass completes', async () => {
        await writeHistory(0);
        await writeHistory(1);
        expect(await repo.indexAudit(A, { maxEntries: 5 })).toEqual({ from: 0, to: 5 });
        const rowsBefore = await auditRowsOf(store, A);
        const undo = await failAuditCursorPast(store, A, 5);
        try {
          // (an error-like object: the SQLite addon may build it in another Jest realm)
          const failed: unknown = await repo.indexAudit(A, { maxEntries: 1000 }).then(
            () => 'resolved',
            (err: unknown) => err,
          );
          expect(failed).toHaveProperty(
            'message',
            expect.stringMatching(/injected: audit cursor refused|failed validation/i),
          );
          expect((await repo.cursor(AUDIT_INDEX_CONSUMER, A)).seq).toBe(5);
          expect(await auditRowsOf(store, A)).toEqual(rowsBefore); // the batch's rows rolled back
          await expectCompleteAnswers();
        } finally {
          await undo();
        }
        const last = await repo.lastSeq(A);
        expect(await repo.indexAudit(A, { maxEntries: 1000 })).toEqual({ from: 5, to: last });
        expect(await auditRowsOf(store, A)).toEqual(expectedAuditRows(await all()));
        await expectCompleteAnswers({ pruned: true });
      });
    });

    describe('codes', () => {
      it('a code entry carries codeRef, never the code', async () => {
        const code = 'ABCD-EFGH-JKLM';
        const ref = codeRef(code);
        expect(ref).toBe(codeRef(code));
        expect(ref).toMatch(/^ac_[0-9a-f]{16}$/);
        expect(ref).not.toContain('ABCD');
        expect(codeRef('ABCD-EFGH-JKLN')).not.toBe(ref);
        const issue: ChangeContext = {
          cause: { kind: 'code-issue', id: 'run-1' },
          actor: 'schedule',
        };
        await appendVia(
          store,
          A,
          issue,
          [{ entity: 'code', entityId: ref, action: 'create', studentSourcedId: 's1' }],
          '2024-05-01T00:00:00.000Z',
        );
        const entries = await all();
        expect(entries).toStrictEqual([
          {
            districtId: A,
            seq: 1,
            at: '2024-05-01T00:00:00.000Z',
            entity: 'code',
            entityId: ref,
            action: 'create',
            studentSourcedId: 's1',
            cause: { kind: 'code-issue', id: 'run-1' },
            actor: 'schedule',
          },
        ]);
        const text = JSON.stringify(entries);
        expect(text).not.toContain(code);
        expect(text).not.toContain(code.replace(/-/g, ''));
        expect(await repo.countByCause(A, ['run-1'])).toEqual({ code: { create: 1 } });
      });
    });
  });
}
