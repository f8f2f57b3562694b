/**
 * The audit's answers when the change log has no explaining entry (a link or account made
 * before the change log existed, or whose entries were pruned), and how references are
 * resolved (sourcedId vs Unique ID, ambiguity) — against a real SQLite store, through the
 * service functions.
 */
import { AuditError, NO_RECORD, parentHistory, whyLinked } from '../../src/audit/service.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import type { GuardianLink } from '../../src/models/types.js';
import {
  importDistrict,
  seed,
  sisParent,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const D = 'audit-d';
let bench: ImportBench;

const link = (p: number, s: number, over: Partial<GuardianLink> = {}): GuardianLink => ({
  districtId: D,
  parentId: `pa_sis_${p}`,
  studentSourcedId: `stu-${s}`,
  origin: 'sis',
  status: 'active',
  ...over,
});

/** Raw SQL on the store's database: rows written the way they were before the change log. */
function sql(text: string, ...params: string[]): void {
  const h = bench.store.handle();
  if (h.kind !== 'sqlite') throw new Error('SQLite expected');
  h.db.prepare(text).run(...params);
}

async function failure(p: Promise<unknown>): Promise<AuditError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AuditError) return err;
    throw err;
  }
  throw new Error('expected an AuditError');
}

beforeAll(async () => {
  bench = await startImportBench([importDistrict(D)]);
  await seed(bench.store, D, {
    students: [
      student(D, 1),
      student(D, 2),
      // A student whose sourcedId is another student's Unique ID.
      student(D, 3, { sourcedId: 'S00001', uniqueId: 'S00003' }),
    ],
    parents: [sisParent(D, 1), sisParent(D, 2)],
    links: [link(1, 1)],
  });
  // Made before the change log existed: rows without any entry.
  sql(
    `INSERT INTO parent_accounts (district_id, id, unique_id, given_name, family_name, email,
       email_normalized, role, status, origin)
     VALUES (?, 'pa_old', 'P-OLD', 'Olga', 'Elder', 'olga@example.org', 'olga@example.org',
       'Parent', 'active', 'import')`,
    D,
  );
  sql(
    `INSERT INTO guardian_links (district_id, parent_id, student_sourced_id, origin, status)
     VALUES (?, 'pa_old', 'stu-1', 'import', 'active')`,
    D,
  );
}, 60_000);

afterAll(async () => {
  await bench?.close();
});

describe('audit without an explaining entry', () => {
  it('a link with no entry says "no record", never nothing', async () => {
    const r = await whyLinked(bench.ctx, D, 'stu-1');
    const old = r.guardians.find(g => g.parent.id === 'pa_old');
    expect(old).toMatchObject({
      origin: 'import',
      status: 'active',
      since: null,
      how: null,
      explanation: 'no record: created before the change log, or its entry was pruned',
    });
    expect(old?.explanation).toBe(NO_RECORD);
    expect(old?.parent).toMatchObject({ uniqueId: 'P-OLD', name: 'Olga Elder' });
    // The logged link beside it is explained (seeded by the store: cause system).
    const logged = r.guardians.find(g => g.parent.id === 'pa_sis_1');
    expect(logged?.how?.cause).toEqual({ kind: 'system' });
    expect(logged?.explanation).toMatch(/^linked by a system change \(actor system\) on /);

    const p = await parentHistory(bench.ctx, D, 'P-OLD');
    expect(p.account).toMatchObject({ id: 'pa_old', created: null, explanation: NO_RECORD });
    expect(p.children).toEqual([
      expect.objectContaining({ origin: 'import', how: null, explanation: NO_RECORD }),
    ]);
    expect(p.history.entries).toEqual([]);
    expect(p.history.nextAfter).toBeNull();
  });

  it('pruned entries of an inactive link: both ends say "no record"; an active link keeps its entry', async () => {
    await bench.store.addLink(link(2, 2));
    await bench.store.addLink(link(2, 2, { status: 'inactive' }));
    await bench.store.addLink(link(1, 2));
    const before = (await whyLinked(bench.ctx, D, 'stu-2')).guardians;
    expect(before.map(g => [g.parent.id, g.status, g.how?.action, g.ended?.action])).toEqual([
      ['pa_sis_1', 'active', 'create', undefined],
      ['pa_sis_2', 'inactive', 'create', 'deactivate'],
    ]);

    const log = await changeLogRepository(bench.store);
    expect(await log.prune(D, '9999-01-01T00:00:00.000Z')).toBeGreaterThan(0);
    const after = (await whyLinked(bench.ctx, D, 'stu-2')).guardians;
    expect(after[0]).toEqual(before[0]); // the explaining entry of an active link is kept
    expect(after[1]).toMatchObject({
      status: 'inactive',
      how: null,
      since: null,
      ended: null,
      until: null,
      explanation:
        'no record of how it was made (created before the change log, or its entry was pruned); no record of its removal',
    });
  });

  it('an active link whose last entry removed it says so', async () => {
    await bench.store.addLink(link(2, 1, { origin: 'manual' }));
    await bench.store.addLink(link(2, 1, { origin: 'manual', status: 'inactive' }));
    sql(
      `UPDATE guardian_links SET status = 'active' WHERE district_id = ? AND parent_id = 'pa_sis_2'
         AND student_sourced_id = 'stu-1' AND origin = 'manual'`,
      D,
    );
    const g = (await whyLinked(bench.ctx, D, 'stu-1')).guardians.find(
      x => x.parent.id === 'pa_sis_2' && x.origin === 'manual',
    );
    expect(g).toMatchObject({ status: 'active', how: null, since: null });
    expect(g?.explanation).toMatch(
      /^no record: the change log's last entry for this link removed it on .* \(seq \d+\); it was made active again without a log entry$/,
    );
  });
});

describe('audit references', () => {
  it("a reference that is one student's sourcedId and another's Unique ID is ambiguous unless `by` says which", async () => {
    const err = await failure(whyLinked(bench.ctx, D, 'S00001'));
    expect(err.problem).toBe('ambiguous-student');
    expect(err.candidates.map(c => c.id).sort()).toEqual(['S00001', 'stu-1']);
    expect(err.message).toMatch(/^sourcedId or Unique ID S00001 matches 2 students: /);
    expect(err.message).toMatch(/by=sourcedId or by=uniqueId/);
    expect((await whyLinked(bench.ctx, D, 'S00001', { by: 'uniqueId' })).student.sourcedId).toBe(
      'stu-1',
    );
    expect((await whyLinked(bench.ctx, D, 'S00001', { by: 'sourcedId' })).student.uniqueId).toBe(
      'S00003',
    );
  });

  it('unknown district, student or parent, and bad input, are clear errors', async () => {
    expect((await failure(whyLinked(bench.ctx, 'nope', 'stu-1'))).problem).toBe('unknown-district');
    const s = await failure(whyLinked(bench.ctx, D, 'stu-9', { by: 'sourcedId' }));
    expect(s).toMatchObject({
      problem: 'unknown-student',
      message: `district ${D} has no student with sourcedId stu-9`,
    });
    const p = await failure(parentHistory(bench.ctx, D, 'P00001', { by: 'email' }));
    expect(p).toMatchObject({
      problem: 'unknown-parent',
      message: `district ${D} has no parent account with email P00001`,
    });
    expect((await parentHistory(bench.ctx, D, 'P00001', { by: 'uniqueId' })).account.id).toBe(
      'pa_sis_1',
    );
    expect((await failure(whyLinked(bench.ctx, D, '   '))).problem).toBe('invalid-request');
    expect((await failure(parentHistory(bench.ctx, D, 'pa_sis_1', { limit: 0 }))).problem).toBe(
      'invalid-request',
    );
  });
});
