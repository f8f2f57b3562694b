/**
 * Bull Board (queue dashboard) under `/admin/queues`, for admin tokens valid for every
 * district. Browsers get an HTTP Basic prompt: leave the user name empty and paste the token
 * as the password (the dashboard's own API calls then carry the same credentials).
 *
 * - No external requests (districts often run air-gapped): Bull Board's page template loads
 *   Google Fonts; we serve a copy of the installed template without external `<link>`/`<script>`
 *   tags (the UI falls back to system fonts). Its scripts, styles and locales are local.
 * - Each queue carries a description of what it does; the notifications queue says when the
 *   workers run without `SMTP_URL` (they announce it in Redis, src/workers/notifications.ts),
 *   instead of a bare "No workers".
 * - The sync-trigger queue is read-only here: its job schedulers are the districts'
 *   `schedule.cron`, re-installed from the district files at every worker start and reload, so
 *   an edit in the dashboard would be undone silently. Bull Board refuses edits (405).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { AppContext } from '../app.js';
import { NO_SMTP_FRESH_MS, noSmtpKey } from '../workers/notifications.js';
import { QueueName } from '../workers/queues.js';
import { requireRoleHook } from './auth.js';
import type { ApiServer } from './routes/types.js';

export const DASHBOARD_PATH = '/admin/queues';

/** What each queue is for, shown under its name. */
export const QUEUE_DESCRIPTIONS: Readonly<Record<QueueName, string>> = {
  [QueueName.trigger]:
    'Starts runs. Schedules come from the district files (schedule.cron) and are re-installed at every worker start and district reload, so they cannot be edited here: change the file.',
  [QueueName.pull]: 'Reads a roster snapshot from the SIS and splits it into apply chunks.',
  [QueueName.apply]: 'Compares one chunk with the store and writes the changes.',
  [QueueName.finalize]: 'Deactivations, deletion safeguard and run summary.',
  [QueueName.notifications]: 'Activation emails, sent by workers that have SMTP_URL.',
  [QueueName.changes]: 'Reads new change-log entries: activation emails and metrics.',
  [QueueName.webhooks]: 'Change-feed webhook deliveries and the daily change-log retention.',
};

/**
 * Notifications queue adapter: its description also says which worker processes run without
 * `SMTP_URL` (read from Redis whenever Bull Board polls the queue's counts).
 */
class NotificationsAdapter extends BullMQAdapter {
  private note = '';

  constructor(
    queue: Queue,
    private readonly ctx: AppContext,
  ) {
    super(queue, { description: QUEUE_DESCRIPTIONS[QueueName.notifications] });
  }

  override async getJobCounts() {
    const [counts] = await Promise.all([super.getJobCounts(), this.refreshNote()]);
    return counts;
  }

  override getDescription(): string {
    return `${super.getDescription()}${this.note}`;
  }

  private async refreshNote(): Promise<void> {
    try {
      const entries = await this.ctx.redis.hgetall(noSmtpKey(this.ctx.prefix));
      const now = Date.now();
      const fresh = Object.entries(entries)
        .filter(([, at]) => now - Number(at) < NO_SMTP_FRESH_MS)
        .map(([who]) => who);
      this.note = fresh.length
        ? ` Worker processes without SMTP_URL (they send nothing; emails wait here): ${fresh.join(', ')}.`
        : '';
    } catch {
      this.note = ''; // Redis trouble shows in the counts and in /readyz
    }
  }
}

/**
 * A copy of Bull Board's page template without tags that load from other hosts, written to a
 * temp folder (removed when the server closes). Returns the folder.
 */
export function offlineTemplateDir(): string {
  const require = createRequire(import.meta.url);
  const uiDist = join(dirname(require.resolve('@bull-board/ui/package.json')), 'dist');
  const template = readFileSync(join(uiDist, 'index.ejs'), 'utf8')
    .replace(/<link\b[^>]*\bhref="(https?:)?\/\/[^"]*"[^>]*>\s*/gi, '')
    .replace(/<script\b[^>]*\bsrc="(https?:)?\/\/[^"]*"[^>]*>\s*<\/script>\s*/gi, '');
  const dir = mkdtempSync(join(tmpdir(), 'gsync-board-'));
  writeFileSync(join(dir, 'index.ejs'), template);
  return dir;
}

/** Mount Bull Board for every queue of `ctx.queues` (queues added there show up too). */
export async function registerDashboard(app: ApiServer, ctx: AppContext): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  const adapters = Object.values(ctx.queues).map(q => {
    const name = q.name as QueueName;
    if (name === QueueName.notifications) return new NotificationsAdapter(q, ctx);
    return new BullMQAdapter(q, {
      description: QUEUE_DESCRIPTIONS[name] ?? '',
      readOnlyMode: name === QueueName.trigger,
    });
  });
  createBullBoard({
    queues: adapters,
    serverAdapter,
    options: { uiConfig: { boardTitle: 'guardian-sync' } },
  });
  const views = offlineTemplateDir();
  serverAdapter.setViewsPath(views); // after createBullBoard, which sets the package's own
  app.addHook('onClose', (_app, done) => {
    rmSync(views, { recursive: true, force: true });
    done();
  });
  await app.register(async scope => {
    scope.addHook('onRequest', requireRoleHook('admin', { allDistricts: true }));
    await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}
