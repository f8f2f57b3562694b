/**
 * Activation emails through a real SMTP server (`smtp-server`, started here) with real Redis,
 * BullMQ workers and SQLite: content, tokens, exactly-once, 4xx retry, 5xx failure, the
 * "maybe sent" case, rate-limit deferral, resend. Parent accounts come from a real sync of
 * the fake PowerSchool (activation emails off for the sync; the tests enqueue them as an
 * import would).
 */
import { Job, UnrecoverableError } from 'bullmq';
import { startSmtpCatcher, type SmtpCatcher, type SmtpFault } from '../../src/dev/smtp-catcher.js';
import {
  ActivationDeferredError,
  ActivationRequestError,
  activationJobId,
  activationSummary,
  activations,
  enqueueActivationEmails,
  handleActivationSend,
  resendActivation,
  verifyActivationToken,
  type ActivationSendPayload,
} from '../../src/jobs/notifications.js';
import type { ActivationParent, ActivationRecord } from '../../src/models/notifications/index.js';
import { nextWindow, rateWindowKeys, takeSendSlot } from '../../src/notifications/rate-limit.js';
import { createMailer, type Mailer } from '../../src/notifications/smtp.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const FAST = { attempts: 4, backoff: { type: 'fixed', delay: 100 } };
const TOKEN_IN_LINK = /https:\/\/portal\.test\/activate\?token=([A-Za-z0-9_-]{43})/;

/** Poll `check` until it returns a value other than undefined; fail after `timeoutMs`. */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 15000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 25));
  }
}

describe('activation emails (SMTP catcher, BullMQ, SQLite)', () => {
  let h: Harness;
  let smtp: SmtpCatcher;
  let mailer: Mailer;
  const rcptFaults = new Map<string, SmtpFault[]>();
  const dataFaults = new Map<string, SmtpFault[]>();
  /** Active parent accounts with an email, handed out one per test so tests stay independent. */
  let pool: ActivationParent[] = [];
  let withoutEmail: ActivationParent[] = [];

  const next = () => {
    const p = pool.shift();
    if (!p) throw new Error('fixture ran out of parent accounts');
    return p;
  };
  const to = (address: string | undefined) =>
    smtp.messages.filter(m => m.recipients.includes(address ?? '?'));
  const record = async (parentId: string): Promise<ActivationRecord | undefined> =>
    (await activations(h.ctx)).get(h.districtId, parentId);
  const enqueue = (ids: string[]) =>
    enqueueActivationEmails(h.ctx, h.districtId, ids, 'import', { jobOptions: FAST });
  const recordIn = (parentId: string, statuses: string[]) =>
    waitFor(`${parentId} in ${statuses.join('/')}`, async () => {
      const r = await record(parentId);
      return r && statuses.includes(r.status) ? r : undefined;
    });

  beforeAll(async () => {
    smtp = await startSmtpCatcher({
      onRcpt: a => rcptFaults.get(a)?.shift(),
      onData: m => dataFaults.get(m.recipients[0] ?? '')?.shift(),
    });
    mailer = createMailer(smtp.url);
    h = await startHarness({
      students: 80,
      seed: 21,
      env: { SMTP_URL: smtp.url },
      district: {
        // accounts without email exist only under this policy (the default excludes them)
        policies: { guardiansWithoutLogin: 'create' },
        notifications: {
          activationEmails: false,
          portalBaseUrl: 'https://portal.test/activate?token={token}',
          from: '"Test District" <no-reply@test-district.example>',
        },
      },
    });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.activation).toBeUndefined(); // switched off for syncs
    const parents = await (
      await activations(h.ctx)
    ).parents(
      h.districtId,
      (await h.store.getParents(h.districtId)).map(p => p.id),
    );
    const active = parents.filter(p => p.status === 'active');
    pool = active.filter(p => p.email);
    withoutEmail = active.filter(p => !p.email);
    // accounts with two or more children first (the content test wants one)
    const repo = await activations(h.ctx);
    const kids = new Map<string, number>();
    for (const p of pool) kids.set(p.id, (await repo.children(h.districtId, p.id)).length);
    pool.sort((a, b) => (kids.get(b.id) ?? 0) - (kids.get(a.id) ?? 0));
    expect(kids.get(pool[0]?.id ?? '')).toBeGreaterThanOrEqual(2);
    expect(withoutEmail.length).toBeGreaterThan(0);
  });

  afterAll(async () => {
    await h?.close();
    mailer?.close();
    await smtp?.close();
  });

  it('sends one email naming every linked child, with a working single-use link', async () => {
    const p = next();
    const children = await (await activations(h.ctx)).children(h.districtId, p.id);
    const r = await enqueue([p.id]);
    expect(r).toEqual({ queued: 1, noEmail: [], held: 0, skipped: [] });
    await recordIn(p.id, ['sent']);
    const mail = to(p.email);
    expect(mail).toHaveLength(1);
    const m = mail[0]!;
    expect(m.recipients).toEqual([p.email]);
    expect(m.from).toBe('no-reply@test-district.example');
    expect(m.subject).toBe('Activate your Test District parent account');
    expect(m.text).toContain(`Hello ${p.givenName} ${p.familyName},`);
    for (const c of children) {
      expect(m.text).toContain(`${c.givenName} ${c.familyName}`);
      expect(m.html).toContain(`${c.givenName} ${c.familyName}`.replace(/'/g, '&#39;'));
    }
    const token = TOKEN_IN_LINK.exec(m.text)?.[1];
    expect(token).toBeDefined();
    expect(m.html).toContain(`href="https://portal.test/activate?token=${token}"`);
    const rec = await record(p.id);
    expect(rec).toMatchObject({
      status: 'sent',
      recipient: p.email,
      attempts: 1,
      source: 'import',
    });
    expect(rec?.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(rec?.tokenHash).not.toContain(token);
    expect(Date.parse(rec?.tokenExpiresAt ?? '') - Date.parse(rec?.sendingAt ?? '')).toBe(
      14 * 86_400_000,
    );
    expect(await verifyActivationToken(h.ctx, token!)).toEqual({
      ok: true,
      districtId: h.districtId,
      parentId: p.id,
    });
    expect(await verifyActivationToken(h.ctx, token!)).toEqual({ ok: false, reason: 'used' });
    expect(await verifyActivationToken(h.ctx, 'x'.repeat(43))).toEqual({
      ok: false,
      reason: 'unknown',
    });
    await expect(resendActivation(h.ctx, h.districtId, p.id)).rejects.toMatchObject({
      code: 'activated',
    });
  });

  it('exactly once: a job that runs again, an enqueue repeated, or two runs at once send one email', async () => {
    const p = next();
    await enqueue([p.id]);
    await recordIn(p.id, ['sent']);
    const job = await Job.fromId(
      h.ctx.queues.notifications,
      activationJobId(h.districtId, p.id, 0),
    );
    if (!job) throw new Error('job not kept');
    expect(await handleActivationSend(h.ctx, mailer, job)).toEqual({ status: 'sent', sent: false });
    expect(await enqueue([p.id])).toEqual({
      queued: 0,
      noEmail: [],
      held: 0,
      skipped: [{ parentId: p.id, reason: 'activation email sent' }],
    });
    expect(to(p.email)).toHaveLength(1);

    // Two runs of one job at the same moment (no queue: called directly).
    const q = next();
    const repo = await activations(h.ctx);
    const now = new Date().toISOString();
    await repo.upsertPending([
      {
        districtId: h.districtId,
        parentId: q.id,
        status: 'queued',
        source: 'import',
        generation: 0,
        attempts: 0,
        queuedAt: now,
        updatedAt: now,
      },
    ]);
    const data: ActivationSendPayload = {
      kind: 'activation',
      districtId: h.districtId,
      parentId: q.id,
      generation: 0,
    };
    const direct = new Job(h.ctx.queues.notifications, 'activation', data, { attempts: 1 });
    const both = await Promise.allSettled([
      handleActivationSend(h.ctx, mailer, direct),
      handleActivationSend(h.ctx, mailer, direct),
    ]);
    const sentBy = both.filter(s => s.status === 'fulfilled' && s.value.sent);
    expect(sentBy).toHaveLength(1);
    for (const s of both)
      if (s.status === 'rejected') expect(s.reason).toBeInstanceOf(ActivationDeferredError);
    expect(to(q.email)).toHaveLength(1);
    expect((await record(q.id))?.status).toBe('sent');
  });

  it('a send whose worker died mid-send is recorded maybe-sent and not sent again', async () => {
    const p = next();
    const repo = await activations(h.ctx);
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    await repo.upsertPending([
      {
        districtId: h.districtId,
        parentId: p.id,
        status: 'queued',
        source: 'sync',
        generation: 0,
        attempts: 0,
        queuedAt: hourAgo,
        updatedAt: hourAgo,
      },
    ]);
    // the dead attempt: claimed an hour ago, never reported back
    const claim = await repo.beginSend(h.districtId, p.id, 0, {
      tokenHash: 'f'.repeat(64),
      tokenExpiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      recipient: p.email ?? '',
      now: hourAgo,
      leaseMs: 60_000,
    });
    expect(claim.kind).toBe('claimed');
    const data: ActivationSendPayload = {
      kind: 'activation',
      districtId: h.districtId,
      parentId: p.id,
      generation: 0,
    };
    const job = new Job(h.ctx.queues.notifications, 'activation', data, { attempts: 3 });
    await expect(handleActivationSend(h.ctx, mailer, job)).rejects.toBeInstanceOf(
      UnrecoverableError,
    );
    expect(await record(p.id)).toMatchObject({ status: 'maybe-sent' });
    expect(to(p.email)).toHaveLength(0);
  });

  it('4xx and a connection dropped before DATA are retried with backoff, then delivered once', async () => {
    const p = next();
    rcptFaults.set(p.email!, [{ reply: 451, message: '4.7.1 greylisted, try again' }, 'drop']);
    await enqueue([p.id]);
    const rec = await recordIn(p.id, ['sent']);
    expect(rec.attempts).toBe(3);
    expect(to(p.email)).toHaveLength(1);
    expect(rcptFaults.get(p.email!)).toEqual([]);
    const job = await Job.fromId(
      h.ctx.queues.notifications,
      activationJobId(h.districtId, p.id, 0),
    );
    expect(job?.attemptsMade).toBe(3); // two failed attempts and the one that delivered
  });

  it('5xx marks the notification failed with the reason and does not retry', async () => {
    const p = next();
    rcptFaults.set(p.email!, [{ reply: 550, message: '5.1.1 mailbox unavailable' }]);
    await enqueue([p.id]);
    const rec = await recordIn(p.id, ['failed']);
    expect(rec.reason).toMatch(/550.*mailbox unavailable.*RCPT TO/);
    expect(rec.attempts).toBe(1);
    expect(rec.tokenHash).toBeUndefined();
    const id = activationJobId(h.districtId, p.id, 0);
    const job = await waitFor('the job to fail', async () => {
      const j = await Job.fromId(h.ctx.queues.notifications, id);
      return (await j?.getState()) === 'failed' ? j : undefined;
    });
    expect(job.attemptsMade).toBe(1);
    expect(to(p.email)).toHaveLength(0);
  });

  it('a connection lost after DATA is "maybe sent": recorded, not resent; a resend is explicit', async () => {
    const p = next();
    dataFaults.set(p.email!, ['drop']);
    const droppedBefore = smtp.stats.dropped;
    await enqueue([p.id]);
    const rec = await recordIn(p.id, ['maybe-sent']);
    expect(rec.reason).toMatch(/connection lost after the message was sent/);
    expect(rec.attempts).toBe(1);
    expect(rec.tokenHash).toBeDefined(); // the link may be in the parent's mailbox
    expect(smtp.stats.dropped).toBe(droppedBefore + 1);
    const id = activationJobId(h.districtId, p.id, 0);
    const job = await waitFor('the job to fail', async () => {
      const j = await Job.fromId(h.ctx.queues.notifications, id);
      return (await j?.getState()) === 'failed' ? j : undefined;
    });
    expect(job.attemptsMade).toBe(1); // not retried although attempts remained

    const r = await resendActivation(h.ctx, h.districtId, p.id, { jobOptions: FAST });
    expect(r.generation).toBe(1);
    const again = await recordIn(p.id, ['sent']);
    expect(again.generation).toBe(1);
    expect(to(p.email)).toHaveLength(1);
  });

  it('a resend invalidates the previous link', async () => {
    const p = next();
    await enqueue([p.id]);
    await recordIn(p.id, ['sent']);
    const first = TOKEN_IN_LINK.exec(to(p.email)[0]?.text ?? '')?.[1];
    const accepted = smtp.stats.accepted;
    await resendActivation(h.ctx, h.districtId, p.id, { jobOptions: FAST });
    // the old link stops working as soon as the resend is requested
    expect(await verifyActivationToken(h.ctx, first!)).toEqual({ ok: false, reason: 'unknown' });
    await smtp.waitForAccepted(accepted + 1);
    await recordIn(p.id, ['sent']);
    expect(to(p.email)).toHaveLength(2);
    const second = TOKEN_IN_LINK.exec(to(p.email)[1]?.text ?? '')?.[1];
    expect(second).not.toBe(first);
    expect(await verifyActivationToken(h.ctx, second!)).toMatchObject({ ok: true, parentId: p.id });
    await expect(resendActivation(h.ctx, h.districtId, 'no-such-account')).rejects.toBeInstanceOf(
      ActivationRequestError,
    );
  });

  it('accounts without an email are reported "no email" and never sent', async () => {
    const ids = withoutEmail.slice(0, 2).map(p => p.id);
    const r = await enqueue(ids);
    expect(r).toEqual({ queued: 0, noEmail: ids, held: 0, skipped: [] });
    for (const id of ids) expect((await record(id))?.status).toBe('no-email');
    expect(
      await Job.fromId(h.ctx.queues.notifications, activationJobId(h.districtId, ids[0]!, 0)),
    ).toBeUndefined();
  });

  it('mail past the hourly limit is deferred to the next window, not dropped or marked sent', async () => {
    const settings = h.ctx.district(h.districtId).notifications!;
    const keys = rateWindowKeys(h.ctx.prefix, h.districtId, Date.now());
    await h.ctx.redis.del(keys.hour, keys.day);
    settings.ratePerHour = 2;
    try {
      const batch = [next(), next(), next()];
      const accepted = smtp.stats.accepted;
      const enqueuedAt = Date.now();
      await enqueue(batch.map(p => p.id));
      const deferred = await waitFor('one deferred record', async () => {
        for (const p of batch) {
          const r = await record(p.id);
          if (r?.deferredUntil) return r;
        }
        return undefined;
      });
      await smtp.waitForAccepted(accepted + 2);
      const job = await Job.fromId(
        h.ctx.queues.notifications,
        activationJobId(h.districtId, deferred.parentId, 0),
      );
      await waitFor('the job to be delayed', async () =>
        (await job?.getState()) === 'delayed' ? true : undefined,
      );
      expect(deferred.status).toBe('queued');
      expect(deferred.deferredUntil).toBe(new Date(nextWindow(enqueuedAt, 'hour')).toISOString());
      const deferredParent = batch.find(p => p.id === deferred.parentId);
      expect(to(deferredParent?.email)).toHaveLength(0);
      expect((await activationSummary(h.ctx, h.districtId)).deferred).toBe(1);
      // The next window opens (its counter starts at zero): the deferred email goes out.
      await h.ctx.redis.del(keys.hour, keys.day);
      await job?.promote();
      await recordIn(deferred.parentId, ['sent']);
      expect(to(deferredParent?.email)).toHaveLength(1);
      for (const p of batch) expect(to(p.email)).toHaveLength(1);
    } finally {
      settings.ratePerHour = undefined;
    }
  });

  it('rate slots: hour and day limits are shared atomically and name the next window', async () => {
    const prefix = `${h.ctx.prefix}-slots`;
    const t = Date.parse('2030-06-14T10:30:00Z');
    const limits = { ratePerHour: 3, ratePerDay: 4 };
    const take = (now: number) => takeSendSlot(h.ctx.redis, prefix, 'd1', limits, now);
    const first = await Promise.all([take(t), take(t), take(t), take(t), take(t)]);
    expect(first.filter(r => r.ok)).toHaveLength(3);
    expect(first.filter(r => !r.ok)).toEqual([
      { ok: false, window: 'hour', until: Date.parse('2030-06-14T11:00:00Z') },
      { ok: false, window: 'hour', until: Date.parse('2030-06-14T11:00:00Z') },
    ]);
    const nextHour = t + 3_600_000;
    expect(await take(nextHour)).toEqual({ ok: true });
    expect(await take(nextHour)).toEqual({
      ok: false,
      window: 'day',
      until: Date.parse('2030-06-15T00:00:00Z'),
    });
    expect(await takeSendSlot(h.ctx.redis, prefix, 'd2', limits, t)).toEqual({ ok: true });
    const keys = [t, nextHour].flatMap(x => Object.values(rateWindowKeys(prefix, 'd1', x)));
    expect(await h.ctx.redis.ttl(keys[0]!)).toBeGreaterThan(3600);
    await h.ctx.redis.del(...keys, ...Object.values(rateWindowKeys(prefix, 'd2', t)));
  });
});
