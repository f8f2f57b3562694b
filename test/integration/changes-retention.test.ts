/**
 * Change-log retention end to end: the `prune` job on the `webhooks` queue, run by the real
 * worker against a real SQLite store filled by a real sync and store calls. It removes old
 * entries but keeps the entry explaining every active link and account, and never an entry a
 * consumer (here the webhook) has not handled yet.
 */
import { EventEmitter } from 'node:events';
import type { Job } from 'bullmq';
import { consumeChanges } from '../../src/jobs/changes.js';
import { cursorSeqFor, readFeedPage } from '../../src/jobs/change-feed.js';
import {
  WEBHOOK_CONSUMER,
  kickWebhooks,
  setWebhookRetryOptions,
  webhookLags,
  type DeliverResult,
  type PruneResult,
} from '../../src/jobs/webhooks.js';
import {
  changeLogRepository,
  linkRef,
  type ChangeContext,
  type ChangeEntry,
} from '../../src/models/changes/index.js';
import { QueueName } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { startWebhookReceiver, until, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const CHANGE: ChangeContext = { cause: { kind: 'manual' }, actor: 'test:retention' };

describe('change-log retention job', () => {
  let receiver: WebhookReceiver;
  let h: Harness;
  const events = new EventEmitter();
  const results = new Map<string, unknown>();
  const delivered: DeliverResult[] = [];

  /** Add a `prune` job computed as of `asOf` and wait for the worker to finish it. */
  async function prune(asOf: Date): Promise<Record<string, PruneResult>> {
    const job = await h.ctx.queues.webhooks.add('prune', { asOf: asOf.toISOString() });
    const id = job.id ?? '';
    await until(events, ['completed'], () => results.has(id), `prune job ${id}`);
    return results.get(id) as Record<string, PruneResult>;
  }

  async function entries(): Promise<ChangeEntry[]> {
    return (await changeLogRepository(h.store)).list(h.districtId, { limit: 10_000 });
  }

  /** Seqs that must survive: the newest create/reactivate of each active link and account. */
  async function explaining(all: ChangeEntry[]): Promise<number[]> {
    const activeLinks = new Set(
      (await h.store.getLinks(h.districtId))
        .filter(l => l.status === 'active')
        .map(l => linkRef(l.origin, l.parentId, l.studentSourcedId)),
    );
    const activeParents = new Set(
      (await h.store.getParents(h.districtId)).filter(p => p.status === 'active').map(p => p.id),
    );
    const newest = new Map<string, number>();
    for (const e of all) {
      if (e.action !== 'create' && e.action !== 'reactivate') continue;
      const keep =
        (e.entity === 'link' && activeLinks.has(e.entityId)) ||
        (e.entity === 'parent' && activeParents.has(e.entityId));
      if (keep) newest.set(`${e.entity}|${e.entityId}`, e.seq);
    }
    return [...newest.values()].sort((a, b) => a - b);
  }

  beforeAll(async () => {
    setWebhookRetryOptions({ attempts: 1000, backoffMs: 20, maxBackoffMs: 100 });
    receiver = await startWebhookReceiver('fail');
    h = await startHarness({
      students: 30,
      seed: 47,
      env: { CHANGE_LOG_RETENTION_DAYS: '1' },
      district: {
        webhooks: { url: receiver.url, secretEnv: 'RETENTION_HOOK_SECRET', batchSize: 500 },
      },
    });
    h.ctx.secrets.RETENTION_HOOK_SECRET = 'retention-secret-0123456789';
    const worker = h.workers.workers.find(w => w.name === QueueName.webhooks);
    worker?.on('completed', (job: Job, result: unknown) => {
      if (job.name === 'deliver') delivered.push(result as DeliverResult);
      if (job.id) results.set(job.id, result);
      events.emit('completed');
    });
  });
  afterAll(async () => {
    setWebhookRetryOptions(undefined);
    await h?.close();
    await receiver?.close();
  });

  it('keeps what explains active links and accounts, and what is not delivered yet', async () => {
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const d = h.districtId;
    const link = (parentId: string, student: string, status: 'active' | 'inactive') => ({
      districtId: d,
      parentId,
      studentSourcedId: student,
      origin: 'manual' as const,
      status,
    });
    // An active manual link (its create explains it), one removed again (nothing to keep),
    // and one removed and restored (its reactivate explains it, not its first create).
    await h.store.addLink(link('manual-keep', 's-1', 'active'), CHANGE);
    await h.store.addLink(link('manual-gone', 's-2', 'active'), CHANGE);
    await h.store.addLink(link('manual-gone', 's-2', 'inactive'), CHANGE);
    await h.store.addLink(link('manual-back', 's-3', 'active'), CHANGE);
    await h.store.addLink(link('manual-back', 's-3', 'inactive'), CHANGE);
    await h.store.addLink(link('manual-back', 's-3', 'active'), CHANGE);
    const consumed = await consumeChanges(h.ctx, d); // the core consumer has handled everything

    const all = await entries();
    const total = all.length;
    expect(all.at(-1)?.seq).toBe(total);
    // ... and built the audit index to the end of the log (docs/decisions/0019)
    expect(consumed.auditIndex.to).toBe(total);
    const asOf = new Date(Date.now() + 2 * 24 * 3600 * 1000); // every entry is > 1 day old then

    // The receiver is down: nothing was delivered, so nothing may be removed.
    const held = await prune(asOf);
    expect(held[d]).toMatchObject({ removed: 0, heldBy: 'webhook' });
    expect(await entries()).toHaveLength(total);

    // Delivered: now only the explaining entries stay.
    receiver.mode = 'ok';
    await kickWebhooks(h.ctx, d);
    await until(events, ['completed'], () => delivered.some(r => r.to >= total), 'delivery');
    const keep = await explaining(all);
    const done = await prune(asOf);
    expect(done[d]).toMatchObject({ removed: total - keep.length });
    expect(done[d]?.heldBy).toBeUndefined();
    const left = await entries();
    expect(left.map(e => e.seq)).toEqual(keep);

    const byId = (id: string) => left.filter(e => e.entityId === id);
    expect(byId(linkRef('manual', 'manual-keep', 's-1'))).toMatchObject([
      { action: 'create', cause: { kind: 'manual' }, actor: 'test:retention' },
    ]);
    expect(byId(linkRef('manual', 'manual-gone', 's-2'))).toEqual([]);
    expect(byId(linkRef('manual', 'manual-back', 's-3'))).toMatchObject([{ action: 'reactivate' }]);
    // Every active sis link and parent still has its explanation; students have none left.
    expect(left.some(e => e.entity === 'link' && e.origin === 'sis')).toBe(true);
    expect(left.some(e => e.entity === 'parent')).toBe(true);
    expect(left.some(e => e.entity === 'student')).toBe(false);

    // The log keeps numbering after the gap; a second prune removes nothing more.
    expect((await prune(asOf))[d]).toMatchObject({ removed: 0 });
    expect(await (await changeLogRepository(h.store)).lastSeq(d)).toBe(total);
  });

  it('feed readers and the webhook get past gaps retention left, also at the end', async () => {
    const d = h.districtId;
    const repo = await changeLogRepository(h.store);
    // Two more entries that retention may remove once delivered: a gap at the end of the log.
    const tail = { districtId: d, parentId: 'manual-tail', studentSourcedId: 's-9' };
    await h.store.addLink({ ...tail, origin: 'manual', status: 'active' }, CHANGE);
    await h.store.addLink({ ...tail, origin: 'manual', status: 'inactive' }, CHANGE);
    await consumeChanges(h.ctx, d);
    const last = await repo.lastSeq(d);
    await kickWebhooks(h.ctx, d);
    await until(events, ['completed'], () => delivered.some(r => r.to >= last), 'tail delivery');
    const asOf = new Date(Date.now() + 2 * 24 * 3600 * 1000);
    expect((await prune(asOf))[d]).toMatchObject({ removed: 2 });
    const kept = (await entries()).map(e => e.seq);
    expect(kept.at(-1)).toBeLessThan(last); // the log now ends in a gap

    // A feed reader from the start gets every kept entry once and then stops.
    const seqs: number[] = [];
    let after = 0;
    for (let pages = 0; ; pages++) {
      const page = await readFeedPage(repo, d, after, 7);
      seqs.push(...page.entries.map(e => e.seq));
      after = cursorSeqFor(d, page.next);
      if (!page.hasMore) break;
      if (pages > 1000) throw new Error('the feed does not end');
    }
    expect(seqs).toEqual(kept);

    // A webhook starting over (as after its URL changed hands) delivers the kept entries and
    // ends at the log's end, not at its last kept entry: no lag is left behind.
    const start = await repo.cursor(WEBHOOK_CONSUMER, d);
    expect(await repo.advance(WEBHOOK_CONSUMER, d, start.seq, 0)).toBe(true);
    const before = receiver.requests.length;
    delivered.length = 0;
    await kickWebhooks(h.ctx, d);
    await until(events, ['completed'], () => delivered.some(r => r.to >= last), 'redelivery');
    const resent = receiver.requests.slice(before).flatMap(r => r.seqs);
    expect(resent).toEqual(kept);
    expect((await repo.cursor(WEBHOOK_CONSUMER, d)).seq).toBe(last);
    expect((await webhookLags(h.ctx))[d]).toBe(0);
  });
});
