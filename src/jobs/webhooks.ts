/**
 * Webhook delivery of the change feed, and change-log retention. Jobs of the `webhooks` queue
 * (worker: src/workers/webhooks.ts):
 *
 * - `deliver` (job id `webhook.<district>`, one per district): POST the district's change-log
 *   entries after its `webhook` consumer cursor to the district's `webhooks.url`, in batches
 *   of `webhooks.batchSize`, until caught up. The cursor lives in the store (design invariant
 *   13: the store remembers delivery state, not Redis) and moves only after a 2xx. A failed
 *   POST (non-2xx, timeout, network error) records `lastError`, `lastAttemptAt`,
 *   `consecutiveFailures` and `nextAttemptAt` in the cursor state and throws, so BullMQ retries
 *   with capped exponential backoff (or the receiver's `Retry-After`, capped). Delivery is at
 *   least once: a batch whose 2xx got lost is sent again; receivers dedupe by entry `seq`.
 *   A receiver that hangs costs at most `webhooks.timeoutMs` per attempt, on this queue only:
 *   syncs never wait for it.
 * - `sweep` (job scheduler `webhooks-sweep`, every 60 s): kick every district whose webhook
 *   is behind its log (catches kicks lost in a race and districts whose retries ran out).
 * - `prune` (job scheduler `change-log-prune`, daily 03:17 UTC): delete change-log entries
 *   older than `CHANGE_LOG_RETENTION_DAYS` (`ChangeLogRepository.prune` keeps the entries
 *   explaining active links and accounts), never an entry a consumer (`core`, `webhook`) has
 *   not handled yet.
 *
 * Kicks: the change-log consumer (src/jobs/changes.ts) calls `kickWebhooks` after each batch
 * of new entries, and the sweep. While a district's job waits for a retry, a kick is a no-op
 * (same job id); the retry delivers everything written meanwhile.
 *
 * Signature: `X-GuardianSync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<raw body>")>`; receivers check it with `verifyWebhookSignature`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import axios, { isAxiosError } from 'axios';
import type { Job, MinimalJob } from 'bullmq';
import { z } from 'zod';
import type { AppContext } from '../app.js';
import { secretFromEnv, type DistrictConfig, type WebhookSettings } from '../config/district.js';
import { headerValue, parseRetryAfter } from '../connectors/http.js';
import { ConfigError, GuardianSyncError, describeError } from '../errors.js';
import { changeLogRepository, type ChangeLogRepository } from '../models/changes/index.js';
import { processMetrics } from '../workers/metrics.js';
import { feedEntry } from './change-feed.js';
import { CORE_CONSUMER } from './changes.js';

/** Consumer name of the webhook cursor in the change log. */
export const WEBHOOK_CONSUMER = 'webhook';
/** Job scheduler id and period of the sweep. */
export const WEBHOOK_SWEEP_ID = 'webhooks-sweep';
export const WEBHOOK_SWEEP_MS = 60_000;
/** Job scheduler id and cron pattern (UTC) of the daily retention job. */
export const CHANGE_LOG_PRUNE_ID = 'change-log-prune';
export const CHANGE_LOG_PRUNE_CRON = '17 3 * * *';
/** Header names (HTTP headers are case-insensitive; receivers see them lower-cased). */
export const SIGNATURE_HEADER = 'X-GuardianSync-Signature';
export const DELIVERY_HEADER = 'X-GuardianSync-Delivery';
/** Shortest accepted signing secret (characters). */
export const MIN_SECRET_LENGTH = 16;
/** BullMQ backoff type of delivery jobs; the worker computes it (`webhookBackoff`). */
export const WEBHOOK_BACKOFF_TYPE = 'webhook';

/** Retry policy of delivery jobs. */
export interface WebhookRetryOptions {
  /** Attempts per job (the sweep starts a new job within 60 s after the last one). */
  attempts: number;
  /** First retry delay (ms); doubled per attempt. */
  backoffMs: number;
  /** Largest retry delay (ms), also the cap of a receiver's `Retry-After`. */
  maxBackoffMs: number;
}

/** 12 attempts, 5 s doubling to at most 10 min: about 50 min per job before the sweep's next. */
export const DEFAULT_WEBHOOK_RETRY: Readonly<WebhookRetryOptions> = Object.freeze({
  attempts: 12,
  backoffMs: 5000,
  maxBackoffMs: 600_000,
});

let retryOptions: WebhookRetryOptions = { ...DEFAULT_WEBHOOK_RETRY };

/**
 * For tests: the retry policy of delivery jobs added from now on by this process (e.g.
 * `{ backoffMs: 20, maxBackoffMs: 100 }`); `undefined` restores `DEFAULT_WEBHOOK_RETRY`.
 */
export function setWebhookRetryOptions(o: Partial<WebhookRetryOptions> | undefined): void {
  retryOptions = { ...DEFAULT_WEBHOOK_RETRY, ...o };
}

/** BullMQ job id of a district's delivery job (`webhook.<district>`). */
export function webhookJobId(districtId: string): string {
  return `webhook.${districtId}`;
}

const DeliverPayload = z.strictObject({
  districtId: z.string().min(1),
  /** Cap of the retry delay (ms), fixed when the job is added. */
  maxBackoffMs: z.number().int().positive().optional(),
});
const PrunePayload = z.strictObject({
  /** Compute the retention cutoff from this time instead of now (tests, maintenance). */
  asOf: z.iso.datetime().optional(),
});

/**
 * Ask for delivery of the district's new change-log entries to its webhook. Returns false
 * (and adds nothing) when the district has no `webhooks`. While the district's job exists
 * (waiting, running, or waiting for a retry) adding is a no-op: the job reads up to the log's
 * end before it finishes, and the worker checks again once it is gone (`webhookWorkers`), so
 * entries written during its last read are not left waiting for the sweep. Throws when Redis
 * fails.
 */
export async function kickWebhooks(
  ctx: Pick<AppContext, 'queues' | 'districts'>,
  districtId: string,
): Promise<boolean> {
  if (!ctx.districts.get(districtId)?.webhooks) return false;
  const r = retryOptions;
  await ctx.queues.webhooks.add(
    'deliver',
    { districtId, maxBackoffMs: r.maxBackoffMs },
    {
      jobId: webhookJobId(districtId),
      attempts: r.attempts,
      backoff: { type: WEBHOOK_BACKOFF_TYPE, delay: r.backoffMs },
      // Nothing may keep the id after the job ends, or later kicks would be silently dropped.
      // The delivery state (errors, attempts) is in the store.
      removeOnComplete: true,
      removeOnFail: true,
    },
  );
  return true;
}

/**
 * Retry delay (ms) before attempt `attempt + 1`, after `attempt` attempts failed: `base ×
 * 2^(attempt−1)`, or the receiver's `Retry-After` when longer, at most `cap`.
 */
export function webhookRetryDelay(
  attempt: number,
  base: number,
  cap: number,
  retryAfterMs?: number,
): number {
  const exp = base * 2 ** Math.max(0, attempt - 1);
  return Math.min(cap, Math.max(exp, retryAfterMs ?? 0));
}

/**
 * The worker's `backoffStrategy` for `WEBHOOK_BACKOFF_TYPE`: the delay the failed attempt
 * already computed (and recorded as `nextAttemptAt`), else `webhookRetryDelay` from the job's
 * options.
 */
export function webhookBackoff(
  attemptsMade: number,
  _type?: string,
  err?: Error,
  job?: MinimalJob,
): number {
  if (err instanceof WebhookDeliveryError && err.retryDelayMs !== undefined)
    return err.retryDelayMs;
  const backoff = job?.opts.backoff;
  const base =
    (typeof backoff === 'object' ? backoff.delay : backoff) ?? DEFAULT_WEBHOOK_RETRY.backoffMs;
  const data = DeliverPayload.safeParse(job?.data);
  const cap =
    (data.success ? data.data.maxBackoffMs : undefined) ?? DEFAULT_WEBHOOK_RETRY.maxBackoffMs;
  return webhookRetryDelay(attemptsMade, base, cap);
}

/** How a delivery attempt ended (label `outcome` of the deliveries metric). */
export type WebhookOutcome = 'delivered' | 'http_error' | 'timeout' | 'network_error';

/** A delivery attempt failed; retried by the queue. */
export class WebhookDeliveryError extends GuardianSyncError {
  readonly retryable = true;
  constructor(
    message: string,
    readonly outcome: Exclude<WebhookOutcome, 'delivered'>,
    readonly status?: number | undefined,
    readonly retryAfterMs?: number | undefined,
    /** Delay before the next attempt, when the job has one left (see `webhookBackoff`). */
    public retryDelayMs?: number | undefined,
  ) {
    super(message);
  }
}

// --- signing ------------------------------------------------------------------------------

function hmacHex(secret: string, t: number, rawBody: string | Buffer): string {
  return createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest('hex');
}

/**
 * The `X-GuardianSync-Signature` value for `rawBody` sent at `timestampSec` (Unix seconds):
 * `t=<timestampSec>,v1=<hex HMAC-SHA256 of "<t>.<rawBody>" keyed with secret>`.
 */
export function signWebhook(
  secret: string,
  rawBody: string | Buffer,
  timestampSec: number,
): string {
  return `t=${timestampSec},v1=${hmacHex(secret, timestampSec, rawBody)}`;
}

/**
 * Check a delivery's `X-GuardianSync-Signature` header against the raw request body (the
 * exact bytes received, before any JSON parsing). True when the header has a `t` no more
 * than `toleranceSec` seconds from `nowSec` (default: now) and one of its `v1` values is the
 * HMAC-SHA256 of `"<t>.<rawBody>"` with `secret` (compared in constant time). Never throws:
 * a missing or malformed header is false.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | undefined | null,
  rawBody: string | Buffer,
  toleranceSec: number,
  nowSec: number = Math.floor(Date.now() / 1000),
): boolean {
  if (typeof header !== 'string' || header.length > 1024) return false;
  let t: number | undefined;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) v1.push(value);
  }
  if (t === undefined || v1.length === 0 || Math.abs(nowSec - t) > toleranceSec) return false;
  const expected = Buffer.from(hmacHex(secret, t, rawBody), 'hex');
  let ok = false;
  for (const v of v1) if (timingSafeEqual(expected, Buffer.from(v, 'hex'))) ok = true;
  return ok;
}

// --- configuration --------------------------------------------------------------------------

/**
 * The district's signing secret. Throws `ConfigError` naming the variable when it is unset
 * or shorter than `MIN_SECRET_LENGTH`.
 */
export function webhookSecret(
  ctx: Pick<AppContext, 'secrets'>,
  district: DistrictConfig & { webhooks: WebhookSettings },
): string {
  const name = district.webhooks.secretEnv;
  const secret = secretFromEnv(ctx.secrets, district.id, name);
  if (secret.length < MIN_SECRET_LENGTH)
    throw new ConfigError(
      `district ${district.id}: environment variable ${name} (webhook secret) must be at least ${MIN_SECRET_LENGTH} characters`,
    );
  return secret;
}

/**
 * Start-up check of the worker: every district with `webhooks` has its secret. Throws one
 * `ConfigError` listing every problem.
 */
export function checkWebhookSecrets(ctx: Pick<AppContext, 'districts' | 'secrets'>): void {
  const problems: string[] = [];
  for (const d of ctx.districts.values()) {
    if (!d.webhooks) continue;
    try {
      webhookSecret(ctx, { ...d, webhooks: d.webhooks });
    } catch (err) {
      problems.push(err instanceof Error ? err.message : String(err));
    }
  }
  if (problems.length) throw new ConfigError('webhook secrets are missing', problems);
}

/** The URL's host (with port), for logs and the API: never its path or query. */
export function urlHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(invalid url)';
  }
}

// --- delivery state ---------------------------------------------------------------------------

/** What the store remembers about a district's deliveries (the `webhook` cursor's state). */
export interface WebhookDeliveryState {
  /** Failed attempts since the last success (0 when healthy). */
  consecutiveFailures: number;
  /** Why the last failed attempt failed (kept after a success, with `lastErrorAt`). */
  lastError?: string | undefined;
  lastErrorAt?: string | undefined;
  /** ISO time of the last attempt, failed or not. */
  lastAttemptAt?: string | undefined;
  /** ISO time of the last 2xx, and its delivery id `<district>:<firstSeq>-<lastSeq>`. */
  lastDeliveredAt?: string | undefined;
  lastDelivery?: string | undefined;
  /** When the queue retries a failed delivery (absent unless a retry is scheduled). */
  nextAttemptAt?: string | undefined;
}

const StateSchema = z.object({
  consecutiveFailures: z.number().int().min(0).catch(0),
  lastError: z.string().optional().catch(undefined),
  lastErrorAt: z.string().optional().catch(undefined),
  lastAttemptAt: z.string().optional().catch(undefined),
  lastDeliveredAt: z.string().optional().catch(undefined),
  lastDelivery: z.string().optional().catch(undefined),
  nextAttemptAt: z.string().optional().catch(undefined),
});

function readState(raw: Record<string, unknown>): WebhookDeliveryState {
  const r = StateSchema.safeParse({ consecutiveFailures: 0, ...raw });
  return r.success ? r.data : { consecutiveFailures: 0 };
}

/** JSON-safe copy without undefined values (the store keeps state as JSON). */
function stateRecord(s: WebhookDeliveryState): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
}

// --- delivery -------------------------------------------------------------------------------

/** What one `deliverWebhooks` call did. */
export interface DeliverResult {
  districtId: string;
  /** `skipped`: the district has no webhook (any more). */
  skipped?: string;
  /** Cursor before and after. */
  from: number;
  to: number;
  /** Successful POSTs and the entries they carried. */
  batches: number;
  entries: number;
}

interface Attempt {
  /** 1-based attempt number of the job. */
  number: number;
  /** Attempts the job has in all. */
  of: number;
  /** Base and cap of the retry delay (ms). */
  backoffMs: number;
  maxBackoffMs: number;
}

async function post(
  settings: WebhookSettings,
  body: string,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
): Promise<void> {
  // axios' `timeout` is an idle timeout of the socket; the signal bounds the whole request
  // (a receiver that trickles bytes forever), and aborts it when the worker closes.
  const deadline = AbortSignal.timeout(settings.timeoutMs);
  const abort = signal ? AbortSignal.any([deadline, signal]) : deadline;
  let status: number;
  let retryAfter: string | undefined;
  try {
    const res = await axios.post<string>(settings.url, body, {
      headers,
      timeout: settings.timeoutMs,
      signal: abort,
      maxRedirects: 0,
      maxContentLength: 64 * 1024,
      responseType: 'text',
      transformResponse: (r: string) => r,
      validateStatus: () => true,
    });
    status = res.status;
    retryAfter = headerValue(res, 'retry-after');
  } catch (err) {
    if (
      deadline.aborted ||
      (isAxiosError(err) && ['ECONNABORTED', 'ETIMEDOUT'].includes(err.code ?? ''))
    )
      throw new WebhookDeliveryError(`no answer within ${settings.timeoutMs} ms`, 'timeout');
    if (signal?.aborted)
      throw new WebhookDeliveryError('aborted: the worker is shutting down', 'network_error');
    const code = isAxiosError(err) ? (err.code ?? 'unknown') : 'unknown';
    // Only the error code: axios messages can carry the URL (its query could hold a token).
    throw new WebhookDeliveryError(`network error (${code})`, 'network_error');
  }
  if (status < 200 || status > 299)
    throw new WebhookDeliveryError(
      `receiver answered HTTP ${status}`,
      'http_error',
      status,
      parseRetryAfter(retryAfter, Date.now(), 24 * 3600 * 1000),
    );
}

/**
 * Deliver the district's entries after its `webhook` cursor, batch by batch, until caught up
 * (see the module header). Returns what it delivered; `skipped` when the district has no
 * webhook. Throws `WebhookDeliveryError` after recording a failed attempt in the store (the
 * queue retries), `ConfigError` when the secret is missing, and store errors.
 *
 * @param opts.attempt which job attempt this is, to record `nextAttemptAt` (default: one of one)
 * @param opts.signal aborts a POST in flight (worker shutdown)
 */
export async function deliverWebhooks(
  ctx: AppContext,
  districtId: string,
  opts: { attempt?: Attempt; signal?: AbortSignal } = {},
): Promise<DeliverResult> {
  const district = ctx.districts.get(districtId);
  const settings = district?.webhooks;
  const repo = await changeLogRepository(ctx.store);
  const start = await repo.cursor(WEBHOOK_CONSUMER, districtId);
  const out: DeliverResult = { districtId, from: start.seq, to: start.seq, batches: 0, entries: 0 };
  if (!district || !settings) return { ...out, skipped: 'no webhook configured' };
  const secret = webhookSecret(ctx, { ...district, webhooks: settings });
  const metrics = processMetrics(ctx);
  const host = urlHost(settings.url);
  const log = ctx.logger.child({ component: 'webhooks', districtId, host });
  for (;;) {
    const cursor = await repo.cursor(WEBHOOK_CONSUMER, districtId);
    out.to = cursor.seq;
    // Entries up to `end` are all readable (the log's writers bump the counter in the same
    // transaction as they append), so when none is left after the cursor, the rest of the
    // range was removed by retention and the cursor may skip it.
    const end = await repo.lastSeq(districtId);
    const entries = await repo.list(districtId, {
      afterSeq: cursor.seq,
      limit: settings.batchSize,
    });
    const first = entries[0];
    const last = entries.at(-1);
    if (!first || !last) {
      if (cursor.seq < end && (await repo.advance(WEBHOOK_CONSUMER, districtId, cursor.seq, end)))
        out.to = end;
      break;
    }
    const delivery = `${districtId}:${first.seq}-${last.seq}`;
    const body = JSON.stringify({ districtId, entries: entries.map(feedEntry) });
    const now = new Date();
    const t = Math.floor(now.getTime() / 1000);
    const state = readState(cursor.state);
    state.lastAttemptAt = now.toISOString();
    try {
      await post(
        settings,
        body,
        {
          'content-type': 'application/json',
          'user-agent': 'guardian-sync-webhooks/1',
          [SIGNATURE_HEADER]: signWebhook(secret, body, t),
          [DELIVERY_HEADER]: delivery,
        },
        opts.signal,
      );
    } catch (err) {
      const e =
        err instanceof WebhookDeliveryError
          ? err
          : new WebhookDeliveryError(describeError(err), 'network_error');
      const attempt = opts.attempt;
      state.consecutiveFailures += 1;
      state.lastError = `${delivery}: ${e.message}`;
      state.lastErrorAt = state.lastAttemptAt;
      state.nextAttemptAt = undefined;
      if (attempt && attempt.number < attempt.of) {
        e.retryDelayMs = webhookRetryDelay(
          attempt.number,
          attempt.backoffMs,
          attempt.maxBackoffMs,
          e.retryAfterMs,
        );
        state.nextAttemptAt = new Date(Date.now() + e.retryDelayMs).toISOString();
      }
      await repo.setState(WEBHOOK_CONSUMER, districtId, stateRecord(state));
      metrics.recordWebhookDelivery(districtId, e.outcome);
      metrics.setWebhookLag(districtId, (await repo.lastSeq(districtId)) - cursor.seq);
      log.warn(
        {
          delivery,
          outcome: e.outcome,
          status: e.status,
          consecutiveFailures: state.consecutiveFailures,
          nextAttemptAt: state.nextAttemptAt,
        },
        'webhook delivery failed',
      );
      throw e;
    }
    state.consecutiveFailures = 0;
    state.lastDeliveredAt = state.lastAttemptAt;
    state.lastDelivery = delivery;
    state.nextAttemptAt = undefined;
    const moved = await repo.advance(
      WEBHOOK_CONSUMER,
      districtId,
      cursor.seq,
      last.seq,
      stateRecord(state),
    );
    metrics.recordWebhookDelivery(districtId, 'delivered');
    if (moved) {
      out.batches += 1;
      out.entries += entries.length;
      out.to = last.seq;
    }
    metrics.setWebhookLag(districtId, (await repo.lastSeq(districtId)) - last.seq);
    log.debug({ delivery, entries: entries.length }, 'webhook delivered');
  }
  metrics.setWebhookLag(districtId, Math.max(0, (await repo.lastSeq(districtId)) - out.to));
  if (out.batches > 0)
    log.info({ from: out.from, to: out.to, batches: out.batches }, 'webhook caught up');
  return out;
}

/** Entries the district's webhook is behind its log (districts with `webhooks` only). */
export async function webhookLags(ctx: AppContext): Promise<Record<string, number>> {
  const repo = await changeLogRepository(ctx.store);
  const out: Record<string, number> = {};
  for (const d of ctx.districts.values()) {
    if (!d.webhooks) continue;
    const [cursor, last] = await Promise.all([
      repo.cursor(WEBHOOK_CONSUMER, d.id),
      repo.lastSeq(d.id),
    ]);
    out[d.id] = Math.max(0, last - cursor.seq);
  }
  return out;
}

/**
 * After a district's delivery job has finished: kick it again when entries arrived after its
 * last read (the kick that came with them found the job still there). Returns whether it
 * kicked. Throws on store or Redis errors.
 */
export async function rekickIfBehind(ctx: AppContext, districtId: string): Promise<boolean> {
  if (!ctx.districts.get(districtId)?.webhooks) return false;
  const repo = await changeLogRepository(ctx.store);
  const [cursor, last] = await Promise.all([
    repo.cursor(WEBHOOK_CONSUMER, districtId),
    repo.lastSeq(districtId),
  ]);
  return cursor.seq < last && kickWebhooks(ctx, districtId);
}

/** Kick every district whose webhook is behind its log. Returns the districts kicked. */
export async function sweepWebhooks(ctx: AppContext): Promise<string[]> {
  const kicked: string[] = [];
  const metrics = processMetrics(ctx);
  for (const [districtId, lag] of Object.entries(await webhookLags(ctx))) {
    metrics.setWebhookLag(districtId, lag);
    if (lag > 0 && (await kickWebhooks(ctx, districtId))) kicked.push(districtId);
  }
  return kicked;
}

// --- retention ------------------------------------------------------------------------------

/** What the retention job removed in one district. */
export interface PruneResult {
  removed: number;
  /** Entries written before this time were candidates (ISO). */
  cutoff: string;
  /** The cutoff was moved back to keep entries a consumer has not handled yet. */
  heldBy?: string | undefined;
}

/** Consumers whose unhandled entries retention never removes. */
function protectingConsumers(d: DistrictConfig): string[] {
  return d.webhooks ? [CORE_CONSUMER, WEBHOOK_CONSUMER] : [CORE_CONSUMER];
}

async function firstUnhandledAt(
  repo: ChangeLogRepository,
  consumer: string,
  districtId: string,
): Promise<string | undefined> {
  const cursor = await repo.cursor(consumer, districtId);
  const [first] = await repo.list(districtId, { afterSeq: cursor.seq, limit: 1 });
  return first?.at;
}

/**
 * Delete change-log entries older than `CHANGE_LOG_RETENTION_DAYS` (from `asOf`, default
 * now) in every configured district, keeping what `ChangeLogRepository.prune` keeps and
 * every entry the `core` consumer (or, with webhooks, the `webhook` consumer) has not handled
 * yet. Logs and returns the number removed per district. Throws on store errors.
 */
export async function pruneChangeLog(
  ctx: AppContext,
  opts: { asOf?: Date } = {},
): Promise<Record<string, PruneResult>> {
  const repo = await changeLogRepository(ctx.store);
  const days = ctx.env.CHANGE_LOG_RETENTION_DAYS;
  const retentionCutoff = new Date(
    (opts.asOf ?? new Date()).getTime() - days * 24 * 3600 * 1000,
  ).toISOString();
  const log = ctx.logger.child({ component: 'change-log-retention' });
  const out: Record<string, PruneResult> = {};
  for (const d of [...ctx.districts.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    let cutoff = retentionCutoff;
    let heldBy: string | undefined;
    for (const consumer of protectingConsumers(d)) {
      const at = await firstUnhandledAt(repo, consumer, d.id);
      if (at !== undefined && at < cutoff) {
        cutoff = at;
        heldBy = consumer;
      }
    }
    const removed = await repo.prune(d.id, cutoff);
    out[d.id] = { removed, cutoff, heldBy };
    log.info(
      { districtId: d.id, removed, cutoff, retentionDays: days, heldBy },
      heldBy
        ? `change log pruned: ${removed} entries removed (kept entries not yet handled by ${heldBy})`
        : `change log pruned: ${removed} entries removed`,
    );
  }
  return out;
}

// --- jobs and schedulers --------------------------------------------------------------------

/**
 * The `webhooks` queue's handler: `deliver` (one district), `sweep`, `prune`. Returns the
 * job's result (shown in the dashboard). Throws as the functions it calls do.
 */
export async function handleWebhooksJob(
  ctx: AppContext,
  job: Job,
  signal?: AbortSignal,
): Promise<unknown> {
  if (job.name === 'sweep') return { kicked: await sweepWebhooks(ctx) };
  if (job.name === 'prune') {
    const { asOf } = PrunePayload.parse(job.data ?? {});
    return pruneChangeLog(ctx, asOf ? { asOf: new Date(asOf) } : {});
  }
  const { districtId, maxBackoffMs } = DeliverPayload.parse(job.data);
  const backoff = job.opts.backoff;
  const attempt: Attempt = {
    number: job.attemptsMade + 1,
    of: job.opts.attempts ?? 1,
    backoffMs:
      typeof backoff === 'object'
        ? (backoff.delay ?? DEFAULT_WEBHOOK_RETRY.backoffMs)
        : DEFAULT_WEBHOOK_RETRY.backoffMs,
    maxBackoffMs: maxBackoffMs ?? DEFAULT_WEBHOOK_RETRY.maxBackoffMs,
  };
  return deliverWebhooks(ctx, districtId, signal ? { attempt, signal } : { attempt });
}

/**
 * Install the sweep (every 60 s) and the daily retention job on the `webhooks` queue.
 * Idempotent (fixed ids, upsert), so every worker process calls it at start
 * (`guardian-sync worker`).
 */
export async function upsertWebhookSchedulers(ctx: Pick<AppContext, 'queues'>): Promise<void> {
  const q = ctx.queues.webhooks;
  await q.upsertJobScheduler(
    WEBHOOK_SWEEP_ID,
    { every: WEBHOOK_SWEEP_MS },
    { name: 'sweep', data: {}, opts: { removeOnComplete: 10, removeOnFail: 50 } },
  );
  await q.upsertJobScheduler(
    CHANGE_LOG_PRUNE_ID,
    { pattern: CHANGE_LOG_PRUNE_CRON, tz: 'UTC' },
    { name: 'prune', data: {}, opts: { removeOnComplete: 30, removeOnFail: 50 } },
  );
}

// --- status (API) ---------------------------------------------------------------------------

/** A district's webhook delivery state as the API shows it. */
export interface WebhookStatus extends WebhookDeliveryState {
  districtId: string;
  configured: boolean;
  /** Host (and port) of the receiver URL; never its path, query or the secret. */
  urlHost: string | null;
  /** Last sequence number delivered with a 2xx (0: none). */
  deliveredSeq: number;
  /** The district's last sequence number, and `lastSeq − deliveredSeq`. */
  lastSeq: number;
  lag: number;
  /** The district's delivery job in the queue, if one exists now. */
  job: { state: string; attemptsMade: number; attempts: number } | null;
}

/** Read the district's delivery state from the store and its job from Redis. */
export async function webhookStatus(ctx: AppContext, districtId: string): Promise<WebhookStatus> {
  const repo = await changeLogRepository(ctx.store);
  const settings = ctx.districts.get(districtId)?.webhooks;
  const [cursor, lastSeq, job] = await Promise.all([
    repo.cursor(WEBHOOK_CONSUMER, districtId),
    repo.lastSeq(districtId),
    ctx.queues.webhooks.getJob(webhookJobId(districtId)),
  ]);
  const state = readState(cursor.state);
  return {
    districtId,
    configured: settings !== undefined,
    urlHost: settings ? urlHost(settings.url) : null,
    deliveredSeq: cursor.seq,
    lastSeq,
    // No webhook, nothing to deliver: no lag to alert on.
    lag: settings ? Math.max(0, lastSeq - cursor.seq) : 0,
    ...state,
    job: job
      ? {
          state: await job.getState(),
          attemptsMade: job.attemptsMade,
          attempts: job.opts.attempts ?? 1,
        }
      : null,
  };
}
