/**
 * Index contract (issue 20 §1, §2, §7; docs/decisions/0010), shared by
 * `store-indexes-sqlite.test.ts` and `store-indexes-mongo.test.ts`:
 * - a restart of the store (`init` twice, the student lookup opened in between) keeps every
 *   index;
 * - `HOT_QUERIES`: the named hot queries, each run through the real adapter call; the
 *   adapter's test explains every statement/command the call issued (SQLite: EXPLAIN QUERY
 *   PLAN; MongoDB: `explain`) and refuses full scans;
 * - releasing a held run's activation emails takes O(N / batch) store operations.
 */
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { studentLookup } from '../../src/models/imports/student-lookup.js';
import { activationRepository } from '../../src/models/notifications/index.js';
import type { RosterStore } from '../../src/models/types.js';
import { keys, link, parent, plan, student } from './store.contract.js';

const D = 'district-a';

/** A store under test and the count of statements/commands it has sent so far. */
export interface CountedStore {
  store: RosterStore;
  /** Statements (SQLite) or commands (MongoDB) issued since open. */
  ops(): number;
}

/** One hot query: a name, the big tables/collections it must not scan, the adapter call. */
export interface HotQuery {
  name: string;
  /** The plan must not hold a blocking sort (SQLite temp B-tree, MongoDB SORT stage). */
  sorted?: boolean;
  run(store: RosterStore): Promise<unknown>;
}

/** The hot queries of issue 20 (the same list on both stores). */
export const HOT_QUERIES: readonly HotQuery[] = [
  {
    name: 'student by sourcedId',
    run: async s => (await studentLookup({ store: s })).studentBySourcedId(D, 's1'),
  },
  {
    name: 'students by Unique ID (lookup)',
    run: async s => (await studentLookup({ store: s })).studentsByUniqueId(D, 'U-s1'),
  },
  {
    name: 'students by Unique ID (access codes)',
    run: async s => (await accessCodeRepository(s)).studentIdsByUniqueId(D, ['U-s1', 'U-s2']),
  },
  {
    name: 'students by name prefix (lookup)',
    run: async s => (await studentLookup({ store: s })).searchActive(D, 'giv', 10),
  },
  {
    name: 'chunk load: students, parents by email/uniqueId/sourcedId, links by student',
    run: s =>
      s.reconcileChunk(
        D,
        keys({
          studentSourcedIds: ['s1', 's2'],
          studentUniqueIds: ['U-s1'],
          guardianSourcedIds: ['g1'],
          guardianUniqueIds: ['GU1'],
          emailsNormalized: ['p1@example.org'],
        }),
        () => plan(),
        { dryRun: true },
      ),
  },
  {
    name: 'links by parent (finalize)',
    run: s => s.listActiveSisLinks(D, { studentSourcedIds: [], parentIds: ['p1', 'p2'] }),
  },
  {
    name: 'links by student (finalize)',
    run: s => s.listActiveSisLinks(D, { studentSourcedIds: ['s1'], parentIds: [] }),
  },
  { name: 'runs of a district, newest first', sorted: true, run: s => s.listRuns(D, 20) },
  { name: 'active student ids (finalize)', run: s => s.listActiveStudentIds(D) },
  { name: 'active sis parent ids (finalize)', run: s => s.listActiveSisParentIds(D) },
  { name: 'held page', run: s => s.listHeld('run-held', 'student', 0, 100) },
  {
    name: 'change log by district and seq',
    run: async s => (await changeLogRepository(s)).list(D, { afterSeq: 1, limit: 50 }),
  },
  {
    name: 'audit: change log of a parent (index + unindexed tail)',
    sorted: true,
    run: async s =>
      (await changeLogRepository(s)).list(D, { parentId: 'p1', entity: 'link', limit: 50 }),
  },
  {
    name: 'audit: change log of a student (index + unindexed tail)',
    sorted: true,
    run: async s => (await changeLogRepository(s)).list(D, { studentSourcedId: 's1', limit: 50 }),
  },
  {
    name: 'access codes of a student',
    run: async s => (await accessCodeRepository(s)).codesOfStudent(D, 's1'),
  },
  {
    name: 'access code by code',
    run: async s => (await accessCodeRepository(s)).findCode('ABCD-EFGH'),
  },
];

/** A small district with every kind of row the hot queries read (so plans are real). */
export async function seedHotData(store: RosterStore): Promise<void> {
  const students = Array.from({ length: 50 }, (_, i) => student(`s${i}`));
  const parents = Array.from({ length: 20 }, (_, i) =>
    parent(`p${i}`, {
      uniqueId: `GU${i}`,
      email: `p${i}@example.org`,
      emailNormalized: `p${i}@example.org`,
      sources: [{ connector: 'powerschool', sourcedId: `g${i}` }],
    }),
  );
  await store.reconcileChunk(
    D,
    keys({ studentSourcedIds: students.map(s => s.sourcedId) }),
    () =>
      plan({
        students: students.map(record => ({ action: 'create' as const, record })),
        parentCreates: parents,
        links: students.map((s, i) => ({
          action: 'add' as const,
          link: link(`p${i % 20}`, s.sourcedId),
        })),
      }),
    { dryRun: false },
  );
  for (let i = 0; i < 3; i++)
    await store.createRun({
      id: `run-${i}`,
      districtId: D,
      connector: 'powerschool',
      status: 'succeeded',
      dryRun: false,
      trigger: 'manual',
      createdAt: `2030-01-0${i + 1}T00:00:00.000Z`,
      counts: {},
      rejectCount: 0,
      timings: {},
    });
}

export function runStoreIndexContract(
  name: string,
  open: () => Promise<CountedStore>,
  close: (store: RosterStore) => Promise<void>,
): void {
  describe(`store index contract: ${name}`, () => {
    let t: CountedStore;
    beforeEach(async () => {
      t = await open();
    });
    afterEach(async () => {
      await close(t.store);
    });

    it('a restart (init twice, the student lookup opened in between) keeps every index', async () => {
      const first = await t.store.listIndexes();
      expect(first.length).toBeGreaterThan(0);
      await studentLookup({ store: t.store });
      await activationRepository(t.store);
      const opened = await t.store.listIndexes();
      // opening the lookup adds nothing the store's init() did not declare and create
      expect(opened).toEqual(expect.arrayContaining(first));
      await t.store.init();
      const restarted = await t.store.listIndexes();
      expect(restarted).toEqual(opened);
      await t.store.init();
      expect(await t.store.listIndexes()).toEqual(opened);
    });

    it('releasing 5,000 held activation emails is correct and batched', async () => {
      const repo = await activationRepository(t.store);
      const N = 5000;
      const T0 = '2030-01-01T00:00:00.000Z';
      const LATER = '2030-01-01T00:05:00.000Z';
      await repo.upsertPending(
        Array.from({ length: N }, (_, i) => ({
          districtId: D,
          parentId: `p${String(i).padStart(5, '0')}`,
          status: 'held' as const,
          heldRunId: 'r-held',
          source: 'sync' as const,
          generation: 0,
          attempts: 0,
          queuedAt: T0,
          updatedAt: T0,
        })),
      );
      await repo.upsertPending([
        {
          districtId: D,
          parentId: 'other-run',
          status: 'held',
          heldRunId: 'r-other',
          source: 'sync',
          generation: 0,
          attempts: 0,
          queuedAt: T0,
          updatedAt: T0,
        },
      ]);
      const before = t.ops();
      const released = await repo.release(D, 'r-held', LATER);
      const ops = t.ops() - before;
      expect(released).toHaveLength(N);
      expect(new Set(released.map(r => r.parentId)).size).toBe(N);
      for (const r of released) {
        expect(r.status).toBe('queued');
        expect(r.heldRunId).toBeUndefined();
        expect(r.queuedAt).toBe(LATER);
      }
      expect((await repo.get(D, 'other-run'))?.status).toBe('held');
      // one round trip per record would be ≥ N; batches of 1,000 take a few per batch
      expect(ops).toBeLessThanOrEqual(50);
      expect(await repo.release(D, 'r-held', LATER)).toEqual([]);
    });
  });
}
