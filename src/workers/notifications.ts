/**
 * The `notifications` worker: sends activation emails through the SMTP server of `SMTP_URL`.
 * Without `SMTP_URL` no worker starts and the jobs wait in the queue (nothing is dropped or
 * marked sent); the process logs a warning once.
 */
import { DelayedError, UnrecoverableError, Worker, type Job, type RedisOptions } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError, isRetryable } from '../errors.js';
import { handleActivationSend } from '../jobs/notifications.js';
import { createMailer, type Mailer } from '../notifications/smtp.js';
import { QueueName } from './queues.js';

/**
 * Workers for the `notifications` queue (zero or one): `[]` when `SMTP_URL` is not set.
 * `mailer` overrides the SMTP transport (tests). The mailer is closed with the worker.
 */
export function notificationWorkers(
  ctx: AppContext,
  base: { connection: RedisOptions; prefix: string },
  opts: { mailer?: Mailer; concurrency?: number } = {},
): Worker[] {
  const url = ctx.env.SMTP_URL;
  if (!opts.mailer && !url) {
    ctx.logger.warn(
      'SMTP_URL is not set: activation emails stay queued until a worker with SMTP_URL runs',
    );
    return [];
  }
  const mailer = opts.mailer ?? createMailer(url ?? '');
  const worker = new Worker(
    QueueName.notifications,
    async (job: Job, token?: string) => {
      try {
        return await handleActivationSend(ctx, mailer, job, token);
      } catch (err) {
        if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
        if (!isRetryable(err)) throw new UnrecoverableError(describeError(err));
        throw err;
      }
    },
    {
      ...base,
      concurrency: opts.concurrency ?? ctx.env.NOTIFY_CONCURRENCY,
      // One attempt is bounded by the SMTP timeouts (src/notifications/smtp.ts).
      lockDuration: 120_000,
    },
  );
  worker.on('closed', () => mailer.close());
  return [worker];
}
