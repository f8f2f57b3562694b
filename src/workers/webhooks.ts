/**
 * The `webhooks` worker: delivers the change feed to each district's webhook receiver
 * (src/jobs/webhooks.ts). Placeholder until the webhook delivery lands.
 */
import type { RedisOptions, Worker } from 'bullmq';
import type { AppContext } from '../app.js';

/** Workers for the `webhooks` queue. */
export function webhookWorkers(
  _ctx: AppContext,
  _base: { connection: RedisOptions; prefix: string },
): Worker[] {
  return [];
}
