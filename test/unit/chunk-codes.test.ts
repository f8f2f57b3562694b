/**
 * Access codes issued by the apply step of a first sync (ADR 0018, src/access-codes/chunk-codes.ts),
 * on a real SQLite store (`:memory:`): when it issues, to whom, and when it leaves the work to
 * the finalize hook.
 */
import { issueChunkCodes, isFirstSync } from '../../src/access-codes/chunk-codes.js';
import { DistrictConfig } from '../../src/config/district.js';
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { keys, plan, student } from '../contract/store.contract.js';

const A = 'district-a';
const FIRST = { baselineStudents: '0', baselineParents: '0' };

function district(accessCodes: Record<string, unknown>) {
  return DistrictConfig.parse({
    id: A,
    name: 'A',
    connector: {
      kind: 'powerschool',
      baseUrl: 'http://127.0.0.1:9',
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
    },
    accessCodes,
  });
}

const run = { id: 'run-1', dryRun: false, trigger: 'schedule', actor: undefined };
const linkless = () => ({ guardianLinks: false, enrollments: false, delta: false });
const linked = () => ({ guardianLinks: true, enrollments: false, delta: false });

describe('access codes issued with a first sync’s chunks', () => {
  let store: SqliteRosterStore;

  beforeEach(async () => {
    store = new SqliteRosterStore(':memory:');
    await store.init();
    // s1, s2 active, s3 inactive; s9 is in the chunk but not in the store (rejected/deferred)
    const students = [student('s1'), student('s2'), student('s3', { status: 'inactive' })];
    await store.reconcileChunk(
      A,
      keys({ studentSourcedIds: students.map(s => s.sourcedId) }),
      () => plan({ students: students.map(record => ({ action: 'create', record })) }),
      { dryRun: false },
    );
  });
  afterEach(async () => {
    await store.close();
  });

  const chunk = ['s1', 's2', 's3', 's9'];

  it('tells a first sync from the ledger meta (both baselines 0; missing figures are not)', () => {
    expect(isFirstSync(FIRST)).toBe(true);
    expect(isFirstSync({ baselineStudents: '0', baselineParents: '3' })).toBe(false);
    expect(isFirstSync({ baselineStudents: '12', baselineParents: '0' })).toBe(false);
    expect(isFirstSync({ baselineStudents: '0' })).toBe(false);
    expect(isFirstSync({})).toBe(false);
  });

  it('issues one code to each active stored student of the chunk, logged with the run as cause, once', async () => {
    const input = {
      run,
      district: district({ enabled: true }),
      meta: FIRST,
      capabilities: linkless,
      studentSourcedIds: chunk,
    };
    expect(await issueChunkCodes({ store }, input)).toBe(2);
    const repo = await accessCodeRepository(store);
    for (const id of ['s1', 's2'])
      expect((await repo.codesOfStudent(A, id)).map(c => c.status)).toEqual(['active']);
    expect(await repo.codesOfStudent(A, 's3')).toEqual([]);
    expect(await repo.codesOfStudent(A, 's9')).toEqual([]);
    const log = await changeLogRepository(store);
    const entries = await log.list(A, { entity: 'code', limit: 100 });
    expect(
      entries.map(e => [e.studentSourcedId, e.action, e.cause.kind, e.cause.id, e.actor]),
    ).toEqual([
      ['s1', 'create', 'code-issue', 'run-1', 'schedule'],
      ['s2', 'create', 'code-issue', 'run-1', 'schedule'],
    ]);
    // a retried chunk issues nothing twice
    expect(await issueChunkCodes({ store }, input)).toBe(0);
    expect(await repo.countActiveCodes(A)).toBe(2);
  });

  it.each([
    ['a dry run', { run: { ...run, dryRun: true } }],
    [
      'a resync (active students before the run)',
      { meta: { baselineStudents: '5', baselineParents: '0' } },
    ],
    [
      'a district with parent accounts before the run',
      { meta: { baselineStudents: '0', baselineParents: '2' } },
    ],
    ['codes disabled', { district: district({ enabled: false }) }],
    [
      'issueTo unlinked with a connector that links (decided at finalize)',
      { capabilities: linked },
    ],
  ])('issues nothing for %s', async (_, over) => {
    const n = await issueChunkCodes(
      { store },
      {
        run,
        district: district({ enabled: true }),
        meta: FIRST,
        capabilities: linkless,
        studentSourcedIds: chunk,
        ...over,
      },
    );
    expect(n).toBe(0);
    expect(await (await accessCodeRepository(store)).countActiveCodes(A)).toBe(0);
  });

  it('issues with a linking connector when issueTo is all', async () => {
    const n = await issueChunkCodes(
      { store },
      {
        run,
        district: district({ enabled: true, issueTo: 'all' }),
        meta: FIRST,
        capabilities: linked,
        studentSourcedIds: chunk,
      },
    );
    expect(n).toBe(2);
  });
});
