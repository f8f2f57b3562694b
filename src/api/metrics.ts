/**
 * `/metrics` in Prometheus text format (prom-client). One scrape covers the deployment:
 *
 * - read at scrape time: jobs per queue and state (`getJobCounts`), and the reconcile lag per
 *   district (seconds since its last successful non-dry run finished), and the queued runs
 *   no worker can take (none connected to the pull queue, src/jobs/worker-wait.ts);
 * - published by every worker and API process to Redis (`src/workers/metrics.ts`): run
 *   outcomes, records processed, SIS HTTP requests by status, job durations, held-run
 *   decisions. They are merged with `AggregatorRegistry.aggregate` (sums).
 */
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import type { AppContext } from '../app.js';
import { workerWait } from '../jobs/worker-wait.js';
import { processMetrics, readProcessSnapshots } from '../workers/metrics.js';

/** Runs of a district looked at to find its last successful one. */
const LAG_LOOKBACK_RUNS = 50;

async function scrapeTimeMetrics(ctx: AppContext, now: number): Promise<Registry> {
  const registry = new Registry();
  const jobs = new Gauge({
    name: 'guardian_sync_queue_jobs',
    help: 'BullMQ jobs per queue and state (completed/failed are bounded by job retention)',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
  });
  const lag = new Gauge({
    name: 'guardian_sync_reconcile_lag_seconds',
    help: "Seconds since the district's last successful (non-dry) run finished; absent before the first",
    labelNames: ['district'] as const,
    registers: [registry],
  });
  const lastSuccess = new Gauge({
    name: 'guardian_sync_last_success_timestamp_seconds',
    help: "Unix time when the district's last successful (non-dry) run finished",
    labelNames: ['district'] as const,
    registers: [registry],
  });
  const withoutWorker = new Gauge({
    name: 'guardian_sync_runs_queued_without_worker',
    help: 'Queued runs of the district while no worker is connected to the queues (1: the district waits; start a worker or cancel the run)',
    labelNames: ['district'] as const,
    registers: [registry],
  });
  const waitingSeconds = new Gauge({
    name: 'guardian_sync_runs_queued_without_worker_seconds',
    help: "Seconds the district's queued run has waited with no worker connected; absent when none waits",
    labelNames: ['district'] as const,
    registers: [registry],
  });
  await Promise.all(
    Object.values(ctx.queues).map(async q => {
      const counts = await q.getJobCounts();
      for (const [state, n] of Object.entries(counts)) jobs.set({ queue: q.name, state }, n);
    }),
  );
  for (const id of ctx.districts.keys()) {
    const active = await ctx.store.findActiveRun(id);
    const wait = active && (await workerWait(ctx, active));
    withoutWorker.set({ district: id }, wait ? 1 : 0);
    if (wait)
      waitingSeconds.set({ district: id }, Math.max(0, (now - Date.parse(wait.since)) / 1000));
    const runs = await ctx.store.listRuns(id, LAG_LOOKBACK_RUNS);
    const ok = runs.find(r => r.status === 'succeeded' && !r.dryRun && r.finishedAt);
    if (!ok?.finishedAt) continue;
    const at = Date.parse(ok.finishedAt);
    lag.set({ district: id }, Math.max(0, (now - at) / 1000));
    lastSuccess.set({ district: id }, at / 1000);
  }
  return registry;
}

/**
 * The metrics text and its content type. Throws when Redis or the store fails (the route
 * answers 500; Prometheus records the scrape as failed).
 */
export async function renderMetrics(
  ctx: AppContext,
  now = Date.now(),
): Promise<{ contentType: string; text: string }> {
  const own = processMetrics(ctx);
  const [scrape, others, mine] = await Promise.all([
    scrapeTimeMetrics(ctx, now),
    readProcessSnapshots(ctx.redis, ctx.prefix, own.processId, now),
    own.registry.getMetricsAsJSON(),
  ]);
  const merged = AggregatorRegistry.aggregate([await scrape.getMetricsAsJSON(), mine, ...others]);
  return { contentType: merged.contentType, text: await merged.metrics() };
}
