/**
 * BullMQ wiring: one Worker per queue, the cron job schedulers of the districts, failure
 * handling, and a graceful shutdown that always finishes.
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError, explainError, isRetryable } from '../errors.js';
import { failRun, handleApply, handleFinalize, handlePull, triggerSync } from '../jobs/sync.js';
import { TriggerPayload } from '../jobs/payloads.js';
import { handleChangesJob, upsertChangesSweep } from '../jobs/changes.js';
import { scheduledSyncSkipped } from '../jobs/sync-mode.js';
import { startRunReconciler } from '../jobs/run-reconciler.js';
import { retryWhenStoreBusy, whenStoreFree } from '../jobs/store-busy.js';
import { stripFailedApplyJob } from '../jobs/job-retention.js';
import { inTurn, passTurnAfterFinalFailure } from '../jobs/chunk-turns.js';
import { agePulls, chunkReleased } from '../jobs/priority.js';
import { instrumentWorkers } from './metrics.js';
import { notificationWorkers } from './notifications.js';
import { webhookWorkers } from './webhooks.js';
import { QueueName } from './queues.js';
import { lockTiming, workerInstanceName, type PipelineQueue } from './locks.js';

export interface RunningWorkers {
  workers: Worker[];
  /** Close every worker (waiting for in-flight jobs up to `timeoutMs`). Idempotent. */
  close(timeoutMs?: number): Promise<void>;
}

export { PIPELINE_LOCK_MS, PIPELINE_STALLED_INTERVAL_MS } from './locks.js';

/** Wrap a handler: non-retryable errors skip the remaining attempts. */
function classify<T>(
  fn: (job: Job, token?: string) => Promise<T>,
): (job: Job, token?: string) => Promise<T> {
  return async (job, token) => {
    try {
      return await fn(job, token);
    } catch (err) {
      if (!isRetryable(err)) {
        // The admin-grade message is what BullMQ stores as the job's failed reason; the
        // original error stays as `cause` (the run's error is explained from it).
        const wrapped = new UnrecoverableError(explainError(err, { context: 'run' }));
        wrapped.cause = err;
        throw wrapped;
      }
      throw err;
    }
  };
}

/**
 * Start workers for all pipeline queues in this process. `concurrency` (apply jobs) and
 * `pullConcurrency` (pulls) override `WORKER_CONCURRENCY` and `PULL_CONCURRENCY`.
 */
export function startWorkers(
  ctx: AppContext,
  opts: { concurrency?: number; pullConcurrency?: number } = {},
): RunningWorkers {
  const shutdown = new AbortController();
  const base = { connection: ctx.connection, prefix: ctx.prefix };
  // Lock and stalled-check timing of the pipeline workers (WORKER_LOCK_MS,
  // WORKER_STALLED_INTERVAL_MS, else the defaults in ./locks.ts), and one name for this
  // process's pipeline workers: BullMQ records it on each job they take (`processedBy`) and on
  // their Redis connection; the run status reads both (src/jobs/run-liveness.ts).
  const name = workerInstanceName();
  const pipelineLock = (queue: PipelineQueue) => {
    const t = lockTiming(ctx.env, queue);
    return { name, lockDuration: t.lockMs, stalledInterval: t.stalledIntervalMs };
  };
  const lock = () => ({
    ...(ctx.env.WORKER_STALLED_INTERVAL_MS === undefined
      ? {}
      : { stalledInterval: ctx.env.WORKER_STALLED_INTERVAL_MS }),
    ...(ctx.env.WORKER_LOCK_MS === undefined ? {} : { lockDuration: ctx.env.WORKER_LOCK_MS }),
  });
  const log = ctx.logger.child({ component: 'workers' });
  const workers = [
    new Worker(
      QueueName.trigger,
      classify(async job => {
        const req = TriggerPayload.parse(job.data);
        const skipped = scheduledSyncSkipped(ctx, req);
        if (skipped) return { skipped };
        const r = await triggerSync(ctx, req);
        return { runId: r.run.id, started: r.started };
      }),
      { ...base, concurrency: 1 },
    ),
    new Worker(
      QueueName.pull,
      classify(
        retryWhenStoreBusy(ctx, QueueName.pull, async (job, token) => {
          try {
            return await handlePull(ctx, job, shutdown.signal, token);
          } finally {
            // A pull slot frees: a pull queued too long goes first (src/jobs/priority.ts).
            await agePulls(ctx).catch((err: unknown) =>
              log.warn({ err: explainError(err) }, 'aging queued pulls failed'),
            );
          }
        }),
      ),
      {
        ...base,
        concurrency: opts.pullConcurrency ?? ctx.env.PULL_CONCURRENCY,
        ...pipelineLock('pull'),
      },
    ),
    new Worker(
      QueueName.apply,
      classify(
        retryWhenStoreBusy(
          ctx,
          QueueName.apply,
          inTurn(ctx, job => handleApply(ctx, job)),
          // Put back for the busy store: its wait for a slot counts from the end of the
          // delay, so it is aged like a released chunk (src/jobs/priority.ts).
          async (job, untilMs) => {
            if (job.id) await chunkReleased(ctx, job.id, untilMs);
          },
        ),
      ),
      {
        ...base,
        concurrency: opts.concurrency ?? ctx.env.WORKER_CONCURRENCY,
        ...pipelineLock('apply'),
      },
    ),
    new Worker(
      QueueName.finalize,
      classify(retryWhenStoreBusy(ctx, QueueName.finalize, job => handleFinalize(ctx, job))),
      { ...base, concurrency: 1, ...pipelineLock('finalize') },
    ),
    new Worker(
      QueueName.changes,
      classify(retryWhenStoreBusy(ctx, QueueName.changes, job => handleChangesJob(ctx, job))),
      { ...base, concurrency: 2, ...lock() },
    ),
    ...notificationWorkers(ctx, base),
    ...webhookWorkers(ctx, base),
  ];
  instrumentWorkers(ctx, workers);
  for (const w of workers) {
    w.on('failed', (job, err) => {
      if (!job) return;
      const attempts = job.opts.attempts ?? 1;
      const final =
        err instanceof UnrecoverableError ||
        err.name === 'UnrecoverableError' ||
        job.attemptsMade >= attempts;
      log.warn(
        {
          queue: w.name,
          jobId: job.id,
          attempt: `${job.attemptsMade}/${attempts}`,
          final,
          err: explainError(err),
        },
        'job failed',
      );
      // The error's class (and its wrapper's) only at debug level.
      log.debug({ queue: w.name, jobId: job.id, err: describeError(err) }, 'job failed (detail)');
      const runId = (job.data as { runId?: unknown }).runId;
      if (!final && w.name === QueueName.apply && job.id) {
        // Its retry waits for a slot again: aging counts from now (src/jobs/priority.ts).
        chunkReleased(ctx, job.id).catch(e =>
          log.error({ err: describeError(e), jobId: job.id }, 'recording the retry failed'),
        );
      }
      if (final && w.name === QueueName.apply) {
        // The district's next chunk takes its turn (one writer per district, ADR 0011).
        passTurnAfterFinalFailure(ctx, job).catch(e =>
          log.error({ err: describeError(e), jobId: job.id }, 'passing the chunk turn failed'),
        );
        stripFailedApplyJob(job).catch(e =>
          log.error({ err: describeError(e), jobId: job.id }, 'stripping roster data failed'),
        );
      }
      if (final && typeof runId === 'string') {
        // The store may be what failed the job (locked by another process): keep trying.
        whenStoreFree(() => failRun(ctx, runId, err), ctx.env.STORE_BUSY_LIMIT_MS).catch(e =>
          log.error({ err: describeError(e), runId }, 'marking run failed failed'),
        );
      }
    });
    w.on('error', err => log.error({ queue: w.name, err: describeError(err) }, 'worker error'));
  }
  // Active runs whose jobs Redis lost (or that stopped progressing) are ended, at start and
  // every RUN_RECONCILE_INTERVAL_MS (src/jobs/run-reconciler.ts).
  const stopReconciler = startRunReconciler(ctx);
  let closing: Promise<void> | undefined;
  return {
    workers,
    close(timeoutMs = 30000) {
      closing ??= (async () => {
        shutdown.abort();
        stopReconciler();
        const deadline = new Promise<void>(resolve => setTimeout(resolve, timeoutMs).unref());
        for (const w of workers) {
          try {
            await Promise.race([w.close(), deadline.then(() => w.close(true))]);
          } catch (err) {
            log.warn({ queue: w.name, err: describeError(err) }, 'closing worker failed');
          }
        }
      })();
      return closing;
    },
  };
}

/**
 * Make the trigger queue's job schedulers match the districts' cron settings: upsert one
 * per scheduled district (id `district.<id>`), remove those of districts no longer
 * scheduled. Upserting is idempotent, so several processes may call it at boot.
 */
export async function syncSchedules(
  ctx: AppContext,
): Promise<{ scheduled: string[]; removed: string[] }> {
  const q = ctx.queues.trigger;
  const wanted = new Map<string, { cron: string; tz: string }>();
  for (const d of ctx.districts.values())
    if (d.schedule)
      wanted.set(`district.${d.id}`, { cron: d.schedule.cron, tz: d.schedule.timezone });
  const removed: string[] = [];
  for (const s of await q.getJobSchedulers(0, -1)) {
    if (!wanted.has(s.key)) {
      await q.removeJobScheduler(s.key);
      removed.push(s.key);
    }
  }
  for (const [id, s] of wanted) {
    const districtId = id.slice('district.'.length);
    await q.upsertJobScheduler(
      id,
      { pattern: s.cron, tz: s.tz },
      {
        name: 'scheduled-sync',
        data: { districtId, dryRun: false, trigger: 'schedule' },
        opts: { removeOnComplete: 100 },
      },
    );
  }
  // The change-log consumers' periodic sweep (src/jobs/changes.ts); not a district schedule.
  await upsertChangesSweep(ctx);
  return { scheduled: [...wanted.keys()], removed };
}

/** Install SIGTERM/SIGINT handlers that close workers, then the context, then exit. */
export function closeOnSignals(ctx: AppContext, running: RunningWorkers): void {
  let done = false;
  const stop = (signal: string) => {
    if (done) return;
    done = true;
    ctx.logger.info({ signal }, 'shutting down');
    void (async () => {
      await running.close();
      await ctx.close();
      process.exit(0);
    })();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
