/**
 * Queue names and Redis connection options, in one place. Job ids are deterministic
 * (`<district>.<run>.<step>`; BullMQ forbids `:` in custom ids) so a re-enqueue is a no-op.
 */
import type { RedisOptions } from 'bullmq';
import { ConfigError } from '../errors.js';

export const QueueName = {
  /** Starts runs: one job per scheduled or requested sync. */
  trigger: 'sync-trigger',
  /** Pulls a snapshot from the SIS and enqueues apply chunks. */
  pull: 'roster-pull',
  /** Diffs and writes one chunk. */
  apply: 'roster-apply',
  /** Deactivations, safeguard, run summary. */
  finalize: 'roster-finalize',
  /** Activation emails, one job per parent account and generation (src/jobs/notifications.ts). */
  notifications: 'notifications',
  /**
   * Change-log consumers (src/jobs/changes.ts): one job per district reads new change-log
   * entries and derives activation emails and metrics from them.
   */
  changes: 'change-consumers',
  /**
   * Webhook deliveries of the change feed, one job per district, and the daily change-log
   * retention job (src/jobs/webhooks.ts).
   */
  webhooks: 'webhooks',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

export const jobId = {
  pull: (districtId: string, runId: string) => `${districtId}.${runId}.pull`,
  /** `generation`: the pull attempt (see `RunLedger.startGeneration`). */
  chunk: (districtId: string, runId: string, generation: number, n: number) =>
    `${districtId}.${runId}.g${generation}.chunk-${n}`,
  finalize: (districtId: string, runId: string) => `${districtId}.${runId}.finalize`,
};

/**
 * Default job options of every queue this app opens: finished jobs are kept briefly for
 * dashboards; failed ones longer, for diagnosis.
 */
export const QUEUE_DEFAULT_JOB_OPTIONS = {
  removeOnComplete: { count: 200, age: 24 * 3600 },
  removeOnFail: { count: 1000, age: 7 * 24 * 3600 },
};

/** ioredis options from a `redis://` / `rediss://` URL, as BullMQ workers need them. */
export function redisOptionsFromUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`REDIS_URL: not a valid URL`, [], 'redis');
  }
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db))
    throw new ConfigError('REDIS_URL: database must be a number', [], 'redis');
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    // BullMQ workers block on Redis; they must not give up on a command.
    maxRetriesPerRequest: null,
  };
}
