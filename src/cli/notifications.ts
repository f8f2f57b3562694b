/**
 * `guardian-sync activation …`: resend one account's activation email, show a district's
 * activation email counts, release the emails a held run kept back.
 */
import type { Command } from 'commander';
import type { AppContext } from '../app.js';
import {
  activationSummary,
  releaseHeldActivations,
  resendActivation,
} from '../jobs/notifications.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

/** One line: `sent 12, queued 3 (deferred 2), failed 1, …` (zero counts left out). */
export function formatActivationSummary(c: Record<string, number>): string {
  const order = ['sent', 'queued', 'sending', 'maybe-sent', 'failed', 'no-email', 'held'];
  const parts: string[] = [];
  for (const k of order) {
    const n = c[k] ?? 0;
    if (!n) continue;
    parts.push(k === 'queued' && c.deferred ? `${k} ${n} (deferred ${c.deferred})` : `${k} ${n}`);
  }
  return parts.length ? parts.join(', ') : 'no activation emails yet';
}

/** Add the `activation` command group to `program`. */
export function registerActivationCommands(program: Command, withApp: WithApp): void {
  const activation = program
    .command('activation')
    .description('activation emails for parent accounts');

  activation
    .command('resend <district> <parentId>')
    .description(
      'send a new activation email (the previous link stops working; a worker with SMTP_URL sends it)',
    )
    .action(async (districtId: string, parentId: string) => {
      await withApp(async ctx => {
        const r = await resendActivation(ctx, districtId, parentId);
        console.log(
          `activation email for ${parentId} queued (generation ${r.generation}, job ${r.jobId}); the previous link no longer works`,
        );
      });
    });

  activation
    .command('status <district>')
    .description("count a district's activation emails by status")
    .action(async (districtId: string) => {
      await withApp(async ctx => {
        ctx.district(districtId);
        console.log(formatActivationSummary(await activationSummary(ctx, districtId)));
      });
    });

  activation
    .command('release <district> <runId>')
    .description('queue the activation emails a run held by the deletion safeguard kept back')
    .action(async (districtId: string, runId: string) => {
      await withApp(async ctx => {
        ctx.district(districtId);
        const n = await releaseHeldActivations(ctx, districtId, runId);
        console.log(`${n} activation emails queued`);
      });
    });
}
