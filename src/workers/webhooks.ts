/**
 * The `webhooks` worker: delivers the change feed to each district's webhook receiver and
 * runs the change log's retention (src/jobs/webhooks.ts). It has its own queue and worker, so
 * a receiver that hangs or fails never delays a sync: at most `concurrency` deliveries wait
 * on receivers at once, each for at most the district's `webhooks.timeoutMs`.
 *
 * The job schedulers of this queue (the 60 s sweep and the daily retention job) are installed
 * by `upsertWebhookSchedulers`, which the `guardian-sync worker` command calls at start beside
 * `syncSchedules` (src/cli/main.ts); not here, so test harnesses that start workers do not get
 * periodic jobs they did not ask for.
 */
import { UnrecoverableError, Worker, type Job, type RedisOptions } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError, isRetryable } from '../errors.js';
import {
  handleWebhooksJob,
  rekickIfBehind,
  webhookBackoff,
  webhookLags,
} from '../jobs/webhooks.js';
import { processMetrics } from './metrics.js';
import { QueueName } from './queues.js';

/** Jobs of the `webhooks` queue processed in parallel per process (one per district at most). */
export const WEBHOOK_CONCURRENCY = 4;

/**
 * Workers for the `webhooks` queue (always one: the retention job runs on it even when no
 * district has a webhook). Closing the worker aborts deliveries in flight (they are retried).
 */
export function webhookWorkers(
  ctx: AppContext,
  base: { connection: RedisOptions; prefix: string },
  opts: { concurrency?: number } = {},
): Worker[] {
  const closing = new AbortController();
  const worker = new Worker(
    QueueName.webhooks,
    async (job: Job) => {
      try {
        return await handleWebhooksJob(ctx, job, closing.signal);
      } catch (err) {
        if (err instanceof UnrecoverableError) throw err;
        if (!isRetryable(err)) throw new UnrecoverableError(describeError(err));
        throw err;
      }
    },
    {
      ...base,
      concurrency: opts.concurrency ?? WEBHOOK_CONCURRENCY,
      // A job loops over batches, each bounded by the receiver timeout; the lock is renewed.
      lockDuration: 60_000,
      settings: { backoffStrategy: webhookBackoff },
    },
  );
  worker.on('closing', () => closing.abort(new Error('worker closing')));
  // A kick that arrived while a delivery job was finishing was a no-op (same job id): look
  // again now that the job is gone.
  worker.on('completed', (job: Job) => {
    if (job.name !== 'deliver' || closing.signal.aborted) return;
    const districtId = (job.data as { districtId?: unknown }).districtId;
    if (typeof districtId !== 'string') return;
    rekickIfBehind(ctx, districtId).catch((err: unknown) =>
      ctx.logger.warn({ districtId, err: describeError(err) }, 'webhook re-kick failed'),
    );
  });
  processMetrics(ctx).setWebhookLagSource(() => webhookLags(ctx));
  return [worker];
}
