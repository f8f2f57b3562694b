/**
 * Per-process Prometheus metrics (prom-client) for what happens inside jobs: run outcomes,
 * records processed, SIS HTTP requests, job durations, approvals.
 *
 * Workers and the API are separate processes, and there may be several of each. Every
 * process keeps its own prom-client `Registry` and publishes `getMetricsAsJSON()` to one
 * Redis hash (`<prefix>:metrics:processes`, field = process id) shortly after each change and
 * every 15 s. The API's `/metrics` merges all of them with prom-client's
 * `AggregatorRegistry.aggregate` (counters and histogram buckets are summed), so one scrape
 * covers the whole deployment. A process that stops publishing is dropped after
 * `STALE_AFTER_MS`; Prometheus sees that as a counter reset, which `rate()`/`increase()` handle.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues } from 'prom-client';
import type { AppContext } from '../app.js';
import type { PullStats } from '../connectors/types.js';
import type { SyncRun } from '../models/types.js';
import { describeError } from '../errors.js';

/** A process's snapshot older than this is dropped from the aggregate (ms). */
export const STALE_AFTER_MS = 24 * 3600 * 1000;
const REFRESH_MS = 15000;
const DEBOUNCE_MS = 200;

type Snapshot = MetricObjectWithValues<{
  value: number;
  labels: Record<string, string | number>;
}>[];

/** Redis hash holding every process's metrics snapshot. */
export function metricsKey(prefix: string): string {
  return `${prefix}:metrics:processes`;
}

/** One process's metrics registry and its publisher. Get it with `processMetrics(ctx)`. */
export class ProcessMetrics {
  readonly registry = new Registry();
  /** Process id in the Redis hash: `host:pid:random`. */
  readonly processId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  readonly runs = new Counter({
    name: 'guardian_sync_runs_total',
    help: 'Sync runs that ended, by district, connector, final status and dry run',
    labelNames: ['district', 'connector', 'status', 'dry_run'] as const,
    registers: [this.registry],
  });
  readonly records = new Counter({
    name: 'guardian_sync_records_processed_total',
    help: 'Changes recorded in the change log (all causes: runs, approvals, imports, redemptions…), by district, entity and action',
    labelNames: ['district', 'entity', 'action'] as const,
    registers: [this.registry],
  });
  readonly sisRequests = new Counter({
    name: 'guardian_sync_sis_http_requests_total',
    help: 'HTTP requests to SIS servers by district, connector and HTTP status (or "network")',
    labelNames: ['district', 'connector', 'status'] as const,
    registers: [this.registry],
  });
  readonly jobDuration = new Histogram({
    name: 'guardian_sync_job_duration_seconds',
    help: 'Time BullMQ jobs spent processing, by queue and outcome',
    labelNames: ['queue', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'guardian_sync_held_run_decisions_total',
    help: 'Held runs approved or discarded (API or CLI), by district and decision',
    labelNames: ['district', 'decision'] as const,
    registers: [this.registry],
  });

  readonly webhookDeliveries = new Counter({
    name: 'guardian_sync_webhook_deliveries_total',
    help: 'Webhook delivery attempts of the change feed, by district and outcome (delivered, http_error, timeout, network_error)',
    labelNames: ['district', 'outcome'] as const,
    registers: [this.registry],
  });
  /**
   * Entries a district's webhook is behind its change log. Every worker process computes it
   * from the store when it publishes (`setWebhookLagSource`), so the processes agree and the
   * API keeps the largest (`aggregator: 'max'`), never a sum over processes.
   */
  readonly webhookLag = new Gauge({
    name: 'guardian_sync_webhook_lag_entries',
    help: 'Change-log entries not yet delivered to the district webhook (last seq minus delivered seq)',
    labelNames: ['district'] as const,
    aggregator: 'max',
    registers: [this.registry],
    collect: async () => {
      if (!this.webhookLagSource) return;
      try {
        for (const [district, lag] of Object.entries(await this.webhookLagSource()))
          this.webhookLag.set({ district }, lag);
      } catch (err) {
        this.logger.warn({ err: describeError(err) }, 'reading webhook lag failed');
      }
    },
  });
  private webhookLagSource: (() => Promise<Record<string, number>>) | undefined;

  /**
   * Entries of a district's change log the audit index trailed by when the change-log
   * consumer's last pass began (docs/decisions/0019; the audit reads the trailing entries by a
   * scan of the log, so answers stay complete, only slower). The largest across processes.
   */
  readonly auditIndexLag = new Gauge({
    name: 'guardian_sync_audit_index_lag_entries',
    help: 'Change-log entries not yet in the audit index when the consumer last started a pass (last seq minus the audit index cursor)',
    labelNames: ['district'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });

  /** Active runs the run reconciler ended or re-queued (src/jobs/run-reconciler.ts). */
  readonly reconciledRuns = new Counter({
    name: 'guardian_sync_runs_reconciled_total',
    help: 'Active runs whose jobs were lost or that made no progress, by district and action (failed, requeued)',
    labelNames: ['district', 'action'] as const,
    registers: [this.registry],
  });
  /** Pipeline jobs put back because the store was locked by another process. */
  readonly storeBusyRetries = new Counter({
    name: 'guardian_sync_store_busy_retries_total',
    help: 'Pipeline jobs delayed and retried because the store was busy (SQLITE_BUSY), by queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  /** A redemption failure budget ran out (alert on any increase). */
  readonly redemptionBudgetTripped = new Counter({
    name: 'guardian_sync_redemption_budget_tripped_total',
    help: 'Redemption attempts refused because a failure budget is spent, by budget (client, code, token, district, global)',
    labelNames: ['budget'] as const,
    registers: [this.registry],
  });

  private timer: NodeJS.Timeout | undefined;
  private refresh: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.refresh = setInterval(() => void this.publish(), REFRESH_MS).unref();
    // The context closed its Redis connection: nothing more can be published.
    redis.once('end', () => this.stop());
  }

  /**
   * A run reached an end state: `succeeded`, `needs-approval`, `failed`, `cancelled`, or
   * (after a decision on a held run) `succeeded` when approved or `discarded`: a held run is
   * counted when it is held and once more with its decision. Records are not counted here:
   * `recordChanges` counts what the change log says was changed (a discarded run's held
   * deactivations never are).
   */
  recordRun(run: SyncRun): void {
    this.runs.inc({
      district: run.districtId,
      connector: run.connector,
      status: run.status,
      dry_run: String(run.dryRun),
    });
    this.publishSoon();
  }

  /** Change-log entries a consumer handled (entity → action → n; src/jobs/changes.ts). */
  recordChanges(districtId: string, counts: Record<string, Record<string, number>>): void {
    for (const [entity, actions] of Object.entries(counts))
      for (const [action, n] of Object.entries(actions))
        if (n > 0) this.records.inc({ district: districtId, entity, action }, n);
    this.publishSoon();
  }

  /** A pull finished: the connector's request counts by status. */
  recordPull(districtId: string, connector: string, stats: PullStats): void {
    for (const [status, n] of Object.entries(stats.httpByStatus))
      if (n > 0) this.sisRequests.inc({ district: districtId, connector, status }, n);
    this.publishSoon();
  }

  /** A held run was approved or discarded. */
  recordDecision(districtId: string, decision: 'approved' | 'discarded'): void {
    this.decisions.inc({ district: districtId, decision });
    this.publishSoon();
  }

  /** One webhook delivery attempt of the district ended with `outcome`. */
  recordWebhookDelivery(districtId: string, outcome: string): void {
    this.webhookDeliveries.inc({ district: districtId, outcome });
    this.publishSoon();
  }

  /** The district's webhook is `lag` entries behind its change log (≥ 0). */
  setWebhookLag(districtId: string, lag: number): void {
    this.webhookLag.set({ district: districtId }, Math.max(0, lag));
    this.publishSoon();
  }

  /** The district's audit index trailed its change log by `lag` entries (≥ 0). */
  setAuditIndexLag(districtId: string, lag: number): void {
    this.auditIndexLag.set({ district: districtId }, Math.max(0, lag));
    this.publishSoon();
  }

  /**
   * Where the lag gauge is read from at every publish (district → lag): the webhook worker
   * sets it (src/workers/webhooks.ts), so the gauge stays current between deliveries.
   */
  setWebhookLagSource(source: () => Promise<Record<string, number>>): void {
    this.webhookLagSource = source;
  }

  /** A job finished (`completed`) or failed an attempt (`failed`). */
  observeJob(queue: string, job: Job, outcome: 'completed' | 'failed'): void {
    if (job.processedOn === undefined) return;
    const end = job.finishedOn ?? Date.now();
    this.jobDuration.observe({ queue, outcome }, Math.max(0, end - job.processedOn) / 1000);
    this.publishSoon();
  }

  /** Publish within `DEBOUNCE_MS` (changes in a burst are published once). */
  publishSoon(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.publish();
    }, DEBOUNCE_MS).unref();
  }

  /** Write this process's snapshot to Redis now. Never throws (logs a warning). */
  async publish(): Promise<void> {
    if (this.stopped || this.redis.status === 'end') return;
    try {
      const metrics = await this.registry.getMetricsAsJSON();
      await this.redis.hset(
        metricsKey(this.prefix),
        this.processId,
        JSON.stringify({ at: Date.now(), metrics }),
      );
    } catch (err) {
      this.logger.warn({ err: describeError(err) }, 'publishing metrics failed');
    }
  }

  /** Stop publishing (timers cleared). Idempotent. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.refresh) clearInterval(this.refresh);
    this.timer = this.refresh = undefined;
  }
}

const byContext = new WeakMap<AppContext, ProcessMetrics>();

/** The metrics of the process that owns `ctx` (created on first use). */
export function processMetrics(ctx: AppContext): ProcessMetrics {
  let m = byContext.get(ctx);
  if (!m) {
    m = new ProcessMetrics(ctx.redis, ctx.prefix, ctx.logger.child({ component: 'metrics' }));
    byContext.set(ctx, m);
  }
  return m;
}

/** Observe every job of `workers` in the job-duration histogram. */
export function instrumentWorkers(ctx: AppContext, workers: Worker[]): void {
  const m = processMetrics(ctx);
  for (const w of workers) {
    w.on('completed', job => m.observeJob(w.name, job, 'completed'));
    w.on('failed', job => {
      if (job) m.observeJob(w.name, job, 'failed');
    });
  }
}

/**
 * Every process's published snapshot except `exceptId`'s (the caller adds its own, live).
 * Snapshots older than `STALE_AFTER_MS` are deleted. Throws when Redis fails.
 */
export async function readProcessSnapshots(
  redis: Redis,
  prefix: string,
  exceptId: string,
  now = Date.now(),
): Promise<Snapshot[]> {
  const all = await redis.hgetall(metricsKey(prefix));
  const out: Snapshot[] = [];
  const stale: string[] = [];
  for (const [id, json] of Object.entries(all)) {
    if (id === exceptId) continue;
    let parsed: { at: number; metrics: Snapshot };
    try {
      parsed = JSON.parse(json) as { at: number; metrics: Snapshot };
    } catch {
      stale.push(id);
      continue;
    }
    if (now - parsed.at > STALE_AFTER_MS) stale.push(id);
    else out.push(parsed.metrics);
  }
  if (stale.length) await redis.hdel(metricsKey(prefix), ...stale);
  return out;
}
