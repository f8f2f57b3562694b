/**
 * The audit index while a district's sync is running (docs/decisions/0019, point 4): the
 * change-log consumer goes on with its other work (emails, metrics, webhooks) but leaves the
 * audit index for the run's end, and audit reads stay complete meanwhile (they read the
 * entries not indexed yet from the log). Real worker, Redis and SQLite store (test harness).
 */
import { consumeChanges } from '../../src/jobs/changes.js';
import {
  AUDIT_INDEX_CONSUMER,
  changeLogRepository,
  type ChangeContext,
} from '../../src/models/changes/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const CHANGE: ChangeContext = { cause: { kind: 'manual' }, actor: 'test:audit-deferral' };

describe('audit index during a running sync', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 20, seed: 53 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('waits for the run to end; audit reads find the entries meanwhile', async () => {
    const { run: first } = await h.sync();
    expect(first.status).toBe('succeeded');
    const d = h.districtId;
    const repo = await changeLogRepository(h.store);
    await consumeChanges(h.ctx, d);
    const indexed = (await repo.cursor(AUDIT_INDEX_CONSUMER, d)).seq;
    expect(indexed).toBe(await repo.lastSeq(d));
    expect(indexed).toBeGreaterThan(0);

    // A sync of the district is running (as between two of its chunks).
    const now = new Date().toISOString();
    const running = await h.store.createRun({
      ...first,
      id: 'run-audit-deferral',
      status: 'queued',
      createdAt: now,
      startedAt: undefined,
      finishedAt: undefined,
      counts: {},
      timings: {},
      rejectCount: 0,
    });
    await h.store.updateRun(running.id, { status: 'running', startedAt: now });
    await h.store.addLink(
      {
        districtId: d,
        parentId: 'manual-deferral',
        studentSourcedId: 's-deferral',
        origin: 'manual',
        status: 'active',
      },
      CHANGE,
    );
    const end = await repo.lastSeq(d);
    expect(end).toBeGreaterThan(indexed);

    const during = await consumeChanges(h.ctx, d);
    expect(during.auditIndex.to).toBe(during.auditIndex.from); // the index waited
    expect((await repo.cursor(AUDIT_INDEX_CONSUMER, d)).seq).toBe(indexed);
    const history = await repo.list(d, { parentId: 'manual-deferral', limit: 10 });
    expect(history.map(e => [e.seq, e.entity, e.action])).toEqual([[end, 'link', 'create']]);
    const byStudent = await repo.list(d, { studentSourcedId: 's-deferral', limit: 10 });
    expect(byStudent.map(e => e.seq)).toEqual([end]);

    // The run ends: the next pass builds the index to the end of the log.
    await h.store.updateRun(running.id, {
      status: 'succeeded',
      finishedAt: new Date().toISOString(),
    });
    await consumeChanges(h.ctx, d);
    expect((await repo.cursor(AUDIT_INDEX_CONSUMER, d)).seq).toBe(end);
    expect(await repo.list(d, { parentId: 'manual-deferral', limit: 10 })).toEqual(history);
  });
});
