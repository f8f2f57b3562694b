/**
 * The `notifications` worker: sends activation emails through the SMTP server of `SMTP_URL`.
 * Without `SMTP_URL` no worker starts and the jobs wait in the queue (nothing is dropped or
 * marked sent); the process logs a warning once.
 */
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, Worker, type Job, type RedisOptions } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError, isRetryable } from '../errors.js';
import { handleActivationSend } from '../jobs/notifications.js';
import { createMailer, type Mailer } from '../notifications/smtp.js';
import { QueueName } from './queues.js';

/**
 * Redis hash (`<prefix>:status:notifications-no-smtp`) where each worker process running
 * without `SMTP_URL` says so: field `<host>:<pid>`, value the epoch ms of its last refresh
 * (every 30 s). The dashboard reads it to show why the queue has no worker.
 */
export const noSmtpKey = (prefix: string) => `${prefix}:status:notifications-no-smtp`;
/** A `noSmtpKey` entry older than this (ms) belongs to a process that is gone. */
export const NO_SMTP_FRESH_MS = 90_000;

function announceNoSmtp(ctx: AppContext): void {
  const key = noSmtpKey(ctx.prefix);
  const field = `${hostname()}:${process.pid}`;
  const refresh = () => {
    ctx.redis
      .multi()
      .hset(key, field, String(Date.now()))
      .pexpire(key, NO_SMTP_FRESH_MS * 2)
      .exec()
      .catch(() => undefined); // Redis errors are logged by the client's error handler
  };
  refresh();
  setInterval(refresh, 30_000).unref();
}

/**
 * Workers for the `notifications` queue (zero or one): `[]` when `SMTP_URL` is not set (the
 * process then announces it under `noSmtpKey`).
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
    announceNoSmtp(ctx);
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
