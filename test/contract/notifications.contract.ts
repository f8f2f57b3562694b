/**
 * Contract of the `ActivationRepository` (src/models/notifications): run by
 * `notifications-store.test.ts` on SQLite always and on MongoDB when `MONGO_URL` is set.
 * The repository shares the roster store's connection, so roster fixtures are written through
 * the `RosterStore` port.
 */
import { activationRepository } from '../../src/models/notifications/index.js';
import type {
  ActivationRecord,
  ActivationRepository,
} from '../../src/models/notifications/types.js';
import type { RosterStore } from '../../src/models/types.js';
import { keys, link, parent, plan, student } from './store.contract.js';

const D = 'district-a';
const T0 = '2030-01-01T00:00:00.000Z';
const LATER = '2030-01-01T00:05:00.000Z';
const MUCH_LATER = '2030-01-01T01:00:00.000Z';

function rec(parentId: string, over: Partial<ActivationRecord> = {}): ActivationRecord {
  return {
    districtId: D,
    parentId,
    status: 'queued',
    source: 'sync',
    generation: 0,
    attempts: 0,
    queuedAt: T0,
    updatedAt: T0,
    ...over,
  };
}

const claimAt = (now: string, hash = `hash-${now}`) => ({
  tokenHash: hash,
  tokenExpiresAt: '2030-01-15T00:00:00.000Z',
  recipient: 'p@example.org',
  now,
  leaseMs: 10 * 60 * 1000,
});

export function runActivationRepositoryContract(
  name: string,
  open: () => Promise<RosterStore>,
  close: (store: RosterStore) => Promise<void>,
): void {
  describe(`ActivationRepository contract: ${name}`, () => {
    let store: RosterStore;
    let repo: ActivationRepository;
    beforeEach(async () => {
      store = await open();
      repo = await activationRepository(store);
    });
    afterEach(async () => {
      await close(store);
    });

    it('is cached per store and init is idempotent', async () => {
      expect(await activationRepository(store)).toBe(repo);
      await repo.init();
      expect(await repo.get(D, 'nobody')).toBeUndefined();
    });

    it('reads parents and their active children from the roster', async () => {
      await store.reconcileChunk(
        D,
        keys(),
        () =>
          plan({
            students: [
              {
                action: 'create',
                record: student('s1', { givenName: 'Zed', familyName: 'Ames' }, D),
              },
              {
                action: 'create',
                record: student('s2', { givenName: 'Ann', familyName: 'Ames' }, D),
              },
              { action: 'create', record: student('s3', { status: 'inactive' }, D) },
              { action: 'create', record: student('s4', {}, D) },
            ],
            parentCreates: [
              parent('p1', { email: 'p1@example.org' }, D),
              parent('p2', { status: 'inactive' }, D),
            ],
            links: [
              { action: 'add', link: link('p1', 's1', {}, D) },
              { action: 'add', link: link('p1', 's2', {}, D) },
              { action: 'add', link: link('p1', 's3', {}, D) }, // inactive student
              { action: 'add', link: link('p1', 's4', { status: 'inactive' }, D) }, // inactive link
            ],
          }),
        { dryRun: false },
      );
      await store.addLink(link('p1', 's1', { origin: 'manual' }, D)); // second origin, same child
      const parents = await repo.parents(D, ['p1', 'p2', 'missing']);
      expect(parents.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
        {
          id: 'p1',
          givenName: 'Parent p1',
          familyName: 'Family',
          email: 'p1@example.org',
          status: 'active',
        },
        {
          id: 'p2',
          givenName: 'Parent p2',
          familyName: 'Family',
          email: undefined,
          status: 'inactive',
        },
      ]);
      expect(await repo.parents('other-district', ['p1'])).toEqual([]);
      expect(await repo.children(D, 'p1')).toEqual([
        { sourcedId: 's2', givenName: 'Ann', familyName: 'Ames' },
        { sourcedId: 's1', givenName: 'Zed', familyName: 'Ames' },
      ]);
      expect(await repo.children(D, 'p2')).toEqual([]);
    });

    it('upsertPending inserts once and never replaces an existing record', async () => {
      const [first] = await repo.upsertPending([rec('p1')]);
      expect(first).toEqual(rec('p1'));
      const [again] = await repo.upsertPending([
        rec('p1', { source: 'import', queuedAt: LATER, updatedAt: LATER }),
      ]);
      expect(again).toEqual(rec('p1'));
      // a sent record stays sent
      await repo.beginSend(D, 'p1', 0, claimAt(T0));
      await repo.transition(D, 'p1', 0, ['sending'], { status: 'sent', sentAt: T0 });
      const [sent] = await repo.upsertPending([rec('p1')]);
      expect(sent?.status).toBe('sent');
    });

    it('upsertPending promotes a no-email record once the account has an email', async () => {
      await repo.upsertPending([rec('p1', { status: 'no-email' })]);
      const [still] = await repo.upsertPending([
        rec('p1', { status: 'no-email', updatedAt: LATER }),
      ]);
      expect(still?.status).toBe('no-email');
      const [promoted] = await repo.upsertPending([
        rec('p1', { status: 'queued', source: 'import', queuedAt: LATER, updatedAt: LATER }),
      ]);
      expect(promoted).toMatchObject({
        status: 'queued',
        source: 'import',
        queuedAt: LATER,
        generation: 0,
      });
      const out = await repo.upsertPending([
        rec('p2'),
        rec('p3', { status: 'held', heldRunId: 'r1' }),
      ]);
      expect(out.map(r => [r.parentId, r.status])).toEqual([
        ['p2', 'queued'],
        ['p3', 'held'],
      ]);
    });

    it('release moves only the held records of that run to queued', async () => {
      await repo.upsertPending([
        rec('p1', { status: 'held', heldRunId: 'r1' }),
        rec('p2', { status: 'held', heldRunId: 'r1' }),
        rec('p3', { status: 'held', heldRunId: 'r2' }),
      ]);
      const released = await repo.release(D, 'r1', LATER);
      expect(released.map(r => r.parentId).sort()).toEqual(['p1', 'p2']);
      for (const r of released) {
        expect(r.status).toBe('queued');
        expect(r.heldRunId).toBeUndefined();
        expect(r.queuedAt).toBe(LATER);
      }
      expect((await repo.get(D, 'p3'))?.status).toBe('held');
      expect(await repo.release(D, 'r1', LATER)).toEqual([]);
    });

    it('beginSend claims a queued record exactly once', async () => {
      await repo.upsertPending([rec('p1', { deferredUntil: LATER })]);
      const [a, b] = await Promise.all([
        repo.beginSend(D, 'p1', 0, claimAt(T0, 'h-a')),
        repo.beginSend(D, 'p1', 0, claimAt(T0, 'h-b')),
      ]);
      const kinds = [a.kind, b.kind].sort();
      expect(kinds).toEqual(['claimed', 'in-flight']);
      const claimed = a.kind === 'claimed' ? a : b;
      if (claimed.kind !== 'claimed') throw new Error('unreachable');
      expect(claimed.record).toMatchObject({
        status: 'sending',
        attempts: 1,
        recipient: 'p@example.org',
        sendingAt: T0,
        tokenExpiresAt: '2030-01-15T00:00:00.000Z',
      });
      expect(claimed.record.deferredUntil).toBeUndefined();
      expect(['h-a', 'h-b']).toContain(claimed.record.tokenHash);
      const inflight = a.kind === 'in-flight' ? a : b;
      if (inflight.kind !== 'in-flight') throw new Error('unreachable');
      expect(inflight.leaseEndsAt).toBe('2030-01-01T00:10:00.000Z');
    });

    it('beginSend: wrong generation or finished records are done; an expired claim becomes maybe-sent', async () => {
      expect((await repo.beginSend(D, 'nobody', 0, claimAt(T0))).kind).toBe('done');
      await repo.upsertPending([rec('p1')]);
      expect((await repo.beginSend(D, 'p1', 1, claimAt(T0))).kind).toBe('done');
      expect((await repo.beginSend(D, 'p1', 0, claimAt(T0))).kind).toBe('claimed');
      // the worker died: no outcome recorded; within the lease the claim is honoured
      expect((await repo.beginSend(D, 'p1', 0, claimAt(LATER))).kind).toBe('in-flight');
      const late = await repo.beginSend(D, 'p1', 0, claimAt(MUCH_LATER));
      expect(late.kind).toBe('abandoned');
      expect(late.record?.status).toBe('maybe-sent');
      expect(late.record?.reason).toMatch(/may have been delivered/);
      expect(late.record?.tokenHash).toBe(`hash-${T0}`); // the link may be in a mailbox: keep it
      expect((await repo.beginSend(D, 'p1', 0, claimAt(MUCH_LATER))).kind).toBe('done');
    });

    it('transition applies only from the expected status and generation, and clears fields', async () => {
      await repo.upsertPending([rec('p1')]);
      await repo.beginSend(D, 'p1', 0, claimAt(T0, 'h1'));
      expect(await repo.transition(D, 'p1', 1, ['sending'], { status: 'sent' })).toBe(false);
      expect(await repo.transition(D, 'p1', 0, ['queued'], { status: 'sent' })).toBe(false);
      expect(
        await repo.transition(D, 'p1', 0, ['sending'], {
          status: 'queued',
          reason: '451 try later',
          tokenHash: undefined,
          tokenExpiresAt: undefined,
        }),
      ).toBe(true);
      const r = await repo.get(D, 'p1');
      expect(r).toMatchObject({ status: 'queued', reason: '451 try later', attempts: 1 });
      expect(r?.tokenHash).toBeUndefined();
      expect(r?.tokenExpiresAt).toBeUndefined();
      expect((await repo.beginSend(D, 'p1', 0, claimAt(LATER, 'h2'))).record?.attempts).toBe(2);
      await expect(
        repo.transition(D, 'p1', 0, ['sending'], { generation: 5 } as never),
      ).rejects.toThrow(/may not set/);
    });

    it('tokens are single-use and expire', async () => {
      await repo.upsertPending([rec('p1'), rec('p2')]);
      await repo.beginSend(D, 'p1', 0, claimAt(T0, 'tok-1'));
      await repo.beginSend(D, 'p2', 0, { ...claimAt(T0, 'tok-2'), tokenExpiresAt: LATER });
      expect(await repo.consumeToken('nope', T0)).toEqual({ ok: false, reason: 'unknown' });
      expect(await repo.consumeToken('tok-1', LATER)).toEqual({
        ok: true,
        districtId: D,
        parentId: 'p1',
      });
      expect(await repo.consumeToken('tok-1', LATER)).toEqual({ ok: false, reason: 'used' });
      expect(await repo.consumeToken('tok-2', MUCH_LATER)).toEqual({
        ok: false,
        reason: 'expired',
      });
      expect((await repo.get(D, 'p1'))?.tokenUsedAt).toBe(LATER);
    });

    it('requeue starts the next generation and voids the old token; refuses in-flight and activated', async () => {
      const created = await repo.requeue(D, 'fresh', T0);
      expect(created).toMatchObject({
        ok: true,
        record: { generation: 0, status: 'queued', source: 'resend' },
      });

      await repo.upsertPending([rec('p1')]);
      await repo.beginSend(D, 'p1', 0, claimAt(T0, 'old-token'));
      expect(await repo.requeue(D, 'p1', LATER)).toMatchObject({ ok: false, reason: 'in-flight' });
      await repo.transition(D, 'p1', 0, ['sending'], {
        status: 'sent',
        sentAt: T0,
        messageId: '<m1>',
      });
      const next = await repo.requeue(D, 'p1', LATER);
      expect(next).toMatchObject({
        ok: true,
        record: { generation: 1, status: 'queued', source: 'resend', attempts: 0, queuedAt: LATER },
      });
      if (!next.ok) throw new Error('unreachable');
      expect(next.record.tokenHash).toBeUndefined();
      expect(next.record.sentAt).toBeUndefined();
      expect(await repo.consumeToken('old-token', LATER)).toEqual({ ok: false, reason: 'unknown' });
      // generation 0 jobs are stale now
      expect((await repo.beginSend(D, 'p1', 0, claimAt(LATER))).kind).toBe('done');
      expect((await repo.beginSend(D, 'p1', 1, claimAt(LATER, 'new-token'))).kind).toBe('claimed');
      await repo.transition(D, 'p1', 1, ['sending'], { status: 'sent', sentAt: LATER });
      expect(await repo.consumeToken('new-token', LATER)).toMatchObject({ ok: true });
      expect(await repo.requeue(D, 'p1', MUCH_LATER)).toMatchObject({
        ok: false,
        reason: 'activated',
      });
    });

    it('counts per status, deferred separately', async () => {
      await repo.upsertPending([
        rec('p1'),
        rec('p2', { deferredUntil: MUCH_LATER }),
        rec('p3', { deferredUntil: T0 }), // window already open again
        rec('p4', { status: 'no-email' }),
        rec('x', { districtId: 'other' }),
      ]);
      await repo.beginSend(D, 'p1', 0, claimAt(T0));
      await repo.transition(D, 'p1', 0, ['sending'], { status: 'sent' });
      const c = await repo.counts(D, LATER);
      expect(c).toEqual({
        held: 0,
        'no-email': 1,
        queued: 2,
        sending: 0,
        sent: 1,
        'maybe-sent': 0,
        failed: 0,
        deferred: 1,
      });
    });
  });
}
