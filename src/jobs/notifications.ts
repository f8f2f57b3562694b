/**
 * Activation emails: enqueueing (after a sync run, after an admin import, on a resend
 * request), the `notifications` send job, and token verification.
 *
 * Exactly-once (design "Exactly-once side effects"): each parent account has one activation
 * record in the store (`src/models/notifications/`). Jobs are keyed on the account and the
 * record's generation (`activation.<district>.<parent>.g<n>`), so enqueueing twice adds one
 * job; the send job claims the record (`queued` → `sending`) before it talks to SMTP and
 * records `sent` after, so a job that runs twice sends once. A worker that dies mid-send leaves
 * `sending`; the next run of the job waits out the claim's lease and then records
 * `maybe-sent` instead of sending again. See docs/notifications.md.
 */
import { createHash, randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, type Job, type JobsOptions } from 'bullmq';
import { z } from 'zod';
import type { AppContext } from '../app.js';
import type { DistrictConfig } from '../config/district.js';
import { activationLink, type NotificationSettings } from '../config/notifications.js';
import { ConfigError, GuardianSyncError } from '../errors.js';
import {
  activationRepository,
  type ActivationRecord,
  type ActivationRepository,
  type ActivationStatus,
  type ConsumeTokenResult,
} from '../models/notifications/index.js';
import { takeSendSlot } from '../notifications/rate-limit.js';
import { SmtpSendError, classifySmtpError, type Mailer } from '../notifications/smtp.js';
import {
  TOKEN_PATTERN,
  hashActivationToken,
  newActivationToken,
  renderActivationEmail,
} from '../notifications/template.js';

/** Payload of a `notifications` job (no PII: names and addresses are read at send time). */
export const ActivationSendPayload = z.strictObject({
  kind: z.literal('activation'),
  districtId: z.string().min(1),
  parentId: z.string().min(1),
  generation: z.number().int().min(0),
});
export type ActivationSendPayload = z.infer<typeof ActivationSendPayload>;

/**
 * Retries for temporary SMTP failures (4xx, connection problems before the message was
 * handed over): exponential from 30 s, about 2 h in total over 8 attempts.
 */
export const ACTIVATION_JOB_OPTIONS: JobsOptions = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 30_000, jitter: 0.5 },
};

/**
 * How long a `sending` claim is honoured (ms). Longer than one attempt can take (SMTP
 * timeouts: 30 s connect + 30 s greeting + 60 s idle per step); after it, a claim nobody
 * finished is taken as a worker that died mid-send → `maybe-sent`.
 */
export const SEND_LEASE_MS = 10 * 60 * 1000;

/** Count labels merged into run counts under `activation`. */
export const ACTIVATION_COUNT = {
  queued: 'queued',
  held: 'held',
  noEmail: 'not sent: no email',
  already: 'already sent or queued',
  planned: 'planned',
} as const;

/** A request the caller can fix (unknown account, no email, already activated…). Not retried. */
export class ActivationRequestError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    readonly code: 'unknown-account' | 'inactive' | 'no-email' | 'in-flight' | 'activated',
    message: string,
  ) {
    super(message);
  }
}

/** Thrown by the send handler when it must wait and has no BullMQ token to delay the job. */
export class ActivationDeferredError extends GuardianSyncError {
  readonly retryable = true;
  constructor(
    readonly until: number,
    why: string,
  ) {
    super(`activation email deferred until ${new Date(until).toISOString()}: ${why}`);
  }
}

/** The district's notification settings; `ConfigError` naming the district when absent. */
export function notificationSettings(district: DistrictConfig): NotificationSettings {
  const n = district.notifications;
  if (!n)
    throw new ConfigError(
      `district ${district.id} has no "notifications" settings (portalBaseUrl, from) for activation emails`,
    );
  return n;
}

/** The cached activation repository of the context's store. */
export function activations(ctx: Pick<AppContext, 'store'>): Promise<ActivationRepository> {
  return activationRepository(ctx.store);
}

/** Deterministic job id: district, account (hashed when not id-safe) and generation. */
export function activationJobId(districtId: string, parentId: string, generation: number): string {
  const key = /^[A-Za-z0-9_-]{1,80}$/.test(parentId)
    ? parentId
    : `h${createHash('sha256').update(parentId).digest('hex').slice(0, 32)}`;
  return `activation.${districtId}.${key}.g${generation}`;
}

async function addSendJobs(
  ctx: AppContext,
  records: ActivationRecord[],
  jobOptions: JobsOptions = {},
): Promise<void> {
  for (let i = 0; i < records.length; i += 500) {
    await ctx.queues.notifications.addBulk(
      records.slice(i, i + 500).map(r => {
        const data: ActivationSendPayload = {
          kind: 'activation',
          districtId: r.districtId,
          parentId: r.parentId,
          generation: r.generation,
        };
        return {
          name: 'activation',
          data,
          opts: {
            ...ACTIVATION_JOB_OPTIONS,
            ...jobOptions,
            jobId: activationJobId(r.districtId, r.parentId, r.generation),
          },
        };
      }),
    );
  }
}

export interface EnqueueActivationResult {
  /** Accounts whose email is queued (including ones a previous call queued, not yet sent). */
  queued: number;
  /** Accounts without an email address: "activation not sent: no email". Never sent. */
  noEmail: string[];
  /** Accounts held back with a run held by the deletion safeguard. */
  held: number;
  /** Accounts not queued, with the reason (already sent, inactive, unknown account…). */
  skipped: { parentId: string; reason: string }[];
}

/**
 * Queue activation emails for new parent accounts, one per account (it names every child
 * linked to the account when it is sent). Idempotent: an account that already has an
 * activation record (sent, queued, failed…) is not queued again, so a retried run or a
 * restored account never gets a second email; use `resendActivation` for that.
 *
 * `source`: `sync` (the finalize hook; honours the district's `activationEmails` switch) or
 * `import` (the import's own "send activation email" option decides; call only when set).
 * Throws `ConfigError` when the district has no `notifications` settings.
 */
export async function enqueueActivationEmails(
  ctx: AppContext,
  districtId: string,
  parentIds: string[],
  source: 'sync' | 'import',
  opts: { heldRunId?: string; jobOptions?: JobsOptions } = {},
): Promise<EnqueueActivationResult> {
  notificationSettings(ctx.district(districtId));
  const repo = await activations(ctx);
  const out: EnqueueActivationResult = { queued: 0, noEmail: [], held: 0, skipped: [] };
  const ids = [...new Set(parentIds)];
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    const parents = new Map((await repo.parents(districtId, batch)).map(p => [p.id, p]));
    const now = new Date().toISOString();
    const candidates: ActivationRecord[] = [];
    for (const id of batch) {
      const p = parents.get(id);
      if (!p) out.skipped.push({ parentId: id, reason: 'no such parent account' });
      else if (p.status !== 'active')
        out.skipped.push({ parentId: id, reason: 'account inactive' });
      else {
        const status: ActivationStatus = !p.email ? 'no-email' : opts.heldRunId ? 'held' : 'queued';
        candidates.push({
          districtId,
          parentId: id,
          status,
          source,
          generation: 0,
          attempts: 0,
          heldRunId: status === 'held' ? opts.heldRunId : undefined,
          queuedAt: now,
          updatedAt: now,
        });
      }
    }
    const stored = await repo.upsertPending(candidates);
    const toSend: ActivationRecord[] = [];
    for (const r of stored) {
      if (r.status === 'queued') toSend.push(r);
      else if (r.status === 'no-email') out.noEmail.push(r.parentId);
      else if (r.status === 'held' && r.heldRunId === opts.heldRunId) out.held++;
      else out.skipped.push({ parentId: r.parentId, reason: `activation email ${r.status}` });
    }
    // Re-adding the job of a record that is still queued is a no-op (same job id) or, if the
    // job is gone, runs a job that finds the record's real state.
    await addSendJobs(ctx, toSend, opts.jobOptions);
    out.queued += toSend.length;
  }
  return out;
}

/**
 * Send the activation emails a held run kept back (call when the run is approved).
 * Returns how many were queued.
 */
export async function releaseHeldActivations(
  ctx: AppContext,
  districtId: string,
  runId: string,
): Promise<number> {
  const repo = await activations(ctx);
  const released = await repo.release(districtId, runId, new Date().toISOString());
  await addSendJobs(ctx, released);
  return released.length;
}

/**
 * Send a new activation email to one account: starts the record's next generation, which
 * invalidates the previous link at once, and queues the email (rate limits apply).
 * Throws `ActivationRequestError` (unknown/inactive account, no email, a send in progress,
 * account already activated) and `ConfigError` (district without notification settings).
 */
export async function resendActivation(
  ctx: AppContext,
  districtId: string,
  parentId: string,
  opts: { jobOptions?: JobsOptions } = {},
): Promise<{ generation: number; jobId: string }> {
  notificationSettings(ctx.district(districtId));
  const repo = await activations(ctx);
  const [parent] = await repo.parents(districtId, [parentId]);
  if (!parent)
    throw new ActivationRequestError(
      'unknown-account',
      `district ${districtId} has no parent account ${parentId}`,
    );
  if (parent.status !== 'active')
    throw new ActivationRequestError('inactive', `parent account ${parentId} is inactive`);
  if (!parent.email)
    throw new ActivationRequestError(
      'no-email',
      `activation not sent: no email (parent account ${parentId})`,
    );
  const r = await repo.requeue(districtId, parentId, new Date().toISOString());
  if (!r.ok)
    throw new ActivationRequestError(
      r.reason,
      r.reason === 'activated'
        ? `parent account ${parentId} is already activated`
        : `an activation email to ${parentId} is being sent right now; try again in a few minutes`,
    );
  await addSendJobs(ctx, [r.record], opts.jobOptions);
  return {
    generation: r.record.generation,
    jobId: activationJobId(districtId, parentId, r.record.generation),
  };
}

/**
 * Use an activation token (from the link): single use, until its expiry. Returns the account
 * on success; `unknown` / `used` / `expired` otherwise (callers should not tell an outsider
 * which of the three it was).
 */
export async function verifyActivationToken(
  ctx: Pick<AppContext, 'store'>,
  token: string,
): Promise<ConsumeTokenResult> {
  if (!TOKEN_PATTERN.test(token)) return { ok: false, reason: 'unknown' };
  const repo = await activations(ctx);
  return repo.consumeToken(hashActivationToken(token), new Date().toISOString());
}

/** What one run of the send job did. */
export interface ActivationSendResult {
  status: ActivationStatus | 'missing' | 'stale';
  sent: boolean;
}

async function defer(
  job: Job,
  token: string | undefined,
  until: number,
  why: string,
): Promise<never> {
  if (token === undefined) throw new ActivationDeferredError(until, why);
  await job.moveToDelayed(until, token);
  throw new DelayedError(why);
}

/**
 * The `notifications` job (kind `activation`): send one account's activation email, at most
 * once per generation. `token` is the BullMQ lock token (the worker passes it) used to move
 * the job to delayed when a rate-limit window is full or another attempt holds the claim;
 * without it (direct calls) those cases throw `ActivationDeferredError`.
 *
 * Failures: 4xx/connection problems → record back to `queued`, job retried with backoff (the
 * last attempt records `failed`); 5xx → `failed` with the reply; lost connection after the
 * body was sent → `maybe-sent` (never resent automatically). The last three throw
 * `UnrecoverableError` so the job shows as failed in the dashboards.
 */
export async function handleActivationSend(
  ctx: AppContext,
  mailer: Mailer,
  job: Job,
  token?: string,
): Promise<ActivationSendResult> {
  const p = ActivationSendPayload.parse(job.data);
  const district = ctx.district(p.districtId);
  const settings = notificationSettings(district);
  const repo = await activations(ctx);
  const log = ctx.logger.child({
    districtId: p.districtId,
    parentId: p.parentId,
    generation: p.generation,
    step: 'activation-email',
  });
  const record = await repo.get(p.districtId, p.parentId);
  if (!record) return { status: 'missing', sent: false };
  if (record.generation !== p.generation) return { status: 'stale', sent: false };
  if (record.status !== 'queued' && record.status !== 'sending')
    return { status: record.status, sent: false };

  const now = Date.now();
  const [account] = await repo.parents(p.districtId, [p.parentId]);
  if (record.status === 'queued') {
    if (!account || account.status !== 'active') {
      await repo.transition(p.districtId, p.parentId, p.generation, ['queued'], {
        status: 'failed',
        failedAt: new Date(now).toISOString(),
        reason: 'the parent account was deactivated before the email was sent',
      });
      return { status: 'failed', sent: false };
    }
    if (!account.email) {
      await repo.transition(p.districtId, p.parentId, p.generation, ['queued'], {
        status: 'no-email',
        reason: 'activation not sent: no email',
      });
      return { status: 'no-email', sent: false };
    }
    const slot = await takeSendSlot(ctx.redis, ctx.prefix, p.districtId, settings, now);
    if (!slot.ok) {
      await repo.transition(p.districtId, p.parentId, p.generation, ['queued'], {
        deferredUntil: new Date(slot.until).toISOString(),
      });
      log.debug({ until: new Date(slot.until).toISOString() }, 'rate limit reached; deferred');
      return defer(job, token, slot.until, `district ${p.districtId} ${slot.window} limit reached`);
    }
  }
  // A `sending` record is only claimed again if it went back to `queued` in the meantime (a
  // concurrent attempt's temporary failure); that rare claim skips the rate limit.
  const recipient = account?.email ?? record.recipient ?? '';
  const parent = account ?? { givenName: '', familyName: '' };

  const { token: activationToken, hash } = newActivationToken();
  const expiresAt = new Date(now + settings.tokenTtlDays * 86_400_000);
  const claim = await repo.beginSend(p.districtId, p.parentId, p.generation, {
    tokenHash: hash,
    tokenExpiresAt: expiresAt.toISOString(),
    recipient,
    now: new Date(now).toISOString(),
    leaseMs: SEND_LEASE_MS,
  });
  switch (claim.kind) {
    case 'done':
      return { status: claim.record?.status ?? 'missing', sent: false };
    case 'abandoned':
      log.warn('an earlier send attempt never reported back; recorded maybe-sent, not resending');
      throw new UnrecoverableError(`maybe sent: ${claim.record.reason ?? ''}`);
    case 'in-flight':
      return defer(
        job,
        token,
        Date.parse(claim.leaseEndsAt) + 1000,
        'another attempt holds the send claim',
      );
    case 'claimed':
      break;
  }

  const settle = (patch: Parameters<ActivationRepository['transition']>[4]) =>
    repo.transition(p.districtId, p.parentId, p.generation, ['sending'], patch);
  let sent: { messageId: string };
  try {
    const children = await repo.children(p.districtId, p.parentId);
    const content = renderActivationEmail({
      districtName: district.name,
      parent,
      children,
      link: activationLink(settings.portalBaseUrl, activationToken),
      expiresAt,
      ttlDays: settings.tokenTtlDays,
      templates: settings.templates?.activation,
    });
    const domain = /@([^>\s]+)>?\s*$/.exec(settings.from)?.[1] ?? 'guardian-sync.invalid';
    sent = await mailer.send({
      from: settings.from,
      to: recipient,
      ...content,
      messageId: `<activation.${randomUUID()}@${domain}>`,
    });
  } catch (err) {
    const f = err instanceof SmtpSendError ? err : classifySmtpError(err, false);
    const at = new Date().toISOString();
    const attempt = job.attemptsMade + 1;
    const attempts = job.opts.attempts ?? 1;
    if (f.kind === 'ambiguous') {
      await settle({ status: 'maybe-sent', reason: f.reason });
      log.warn({ reason: f.reason }, 'activation email maybe sent; not resending');
      throw new UnrecoverableError(`maybe sent: ${f.reason}`);
    }
    if (f.kind === 'permanent' || attempt >= attempts) {
      const reason =
        f.kind === 'permanent' ? f.reason : `gave up after ${attempt} attempts: ${f.reason}`;
      await settle({
        status: 'failed',
        failedAt: at,
        reason,
        tokenHash: undefined,
        tokenExpiresAt: undefined,
      });
      log.warn({ reason }, 'activation email failed');
      throw new UnrecoverableError(`activation email failed: ${reason}`);
    }
    // Temporary: not delivered. Back to queued (the token of this attempt is void) and let
    // BullMQ retry with backoff.
    await settle({
      status: 'queued',
      reason: `attempt ${attempt} failed: ${f.reason}`,
      tokenHash: undefined,
      tokenExpiresAt: undefined,
    });
    throw f;
  }
  const recorded = await settle({
    status: 'sent',
    sentAt: new Date().toISOString(),
    messageId: sent.messageId,
    reason: undefined,
  });
  if (!recorded)
    log.error('activation email sent but the record had moved on; check the record by hand');
  return { status: 'sent', sent: true };
}

/** Per-status counts of a district's activation records (plus `deferred`). */
export async function activationSummary(
  ctx: Pick<AppContext, 'store'>,
  districtId: string,
): Promise<Record<ActivationStatus | 'deferred', number>> {
  const repo = await activations(ctx);
  return repo.counts(districtId, new Date().toISOString());
}
