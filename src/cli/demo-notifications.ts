/**
 * The demo's activation emails: a local SMTP catcher (`smtp-server`, a devDependency, loaded
 * only here), the demo district's notification settings, and the line the demo prints after
 * its first sync: "activation emails: N sent, N skipped (no email), N deferred".
 */
import type { AppContext } from '../app.js';
import type { NotificationSettings } from '../config/notifications.js';
import { consumeChanges } from '../jobs/changes.js';
import { activationSummary } from '../jobs/notifications.js';

export interface DemoMail {
  /** `SMTP_URL` of the catcher (pooled connections). */
  smtpUrl: string;
  /** The demo district's `notifications` settings. */
  settings: NotificationSettings;
  /** Wait until every queued email was sent, failed or deferred; print the summary. */
  report(ctx: AppContext, districtId: string, print: (line: string) => void): Promise<void>;
  close(): Promise<void>;
}

/** The demo district's hourly cap: keeps the demo quick and shows the deferral. */
export const DEMO_RATE_PER_HOUR = 500;

/**
 * Start the catcher. `ratePerHour` caps the demo district's sending (default
 * `DEMO_RATE_PER_HOUR`; 0: no cap, every email is sent).
 */
export async function startDemoMail(opts: { ratePerHour?: number } = {}): Promise<DemoMail> {
  const { startSmtpCatcher } = await import('../dev/smtp-catcher.js');
  const recipients = new Map<string, number>();
  const smtp = await startSmtpCatcher({
    keepMessages: false,
    onData(m) {
      for (const r of m.recipients) recipients.set(r, (recipients.get(r) ?? 0) + 1);
      return undefined;
    },
  });
  return {
    smtpUrl: `${smtp.url}?pool=true&maxConnections=8`,
    settings: {
      activationEmails: true,
      portalBaseUrl: 'http://localhost:3000/activate?token={token}',
      from: '"Demo Unified School District" <no-reply@demo-usd.example>',
      ratePerHour: opts.ratePerHour === 0 ? undefined : (opts.ratePerHour ?? DEMO_RATE_PER_HOUR),
      tokenTtlDays: 14,
    },
    async report(ctx, districtId, print) {
      const started = Date.now();
      // Emails come from the change log: make sure its consumer has caught up with the run.
      await consumeChanges(ctx, districtId);
      const deadline = started + 5 * 60 * 1000;
      let c = await activationSummary(ctx, districtId);
      while (c.queued - c.deferred + c.sending > 0 && Date.now() < deadline) {
        await new Promise(r => setTimeout(r, 100));
        c = await activationSummary(ctx, districtId);
      }
      const duplicates = [...recipients.values()].filter(n => n > 1).length;
      print(
        `activation emails: ${c.sent} sent, ${c['no-email']} skipped (no email), ${c.deferred} deferred` +
          (c.failed + c['maybe-sent'] ? `, ${c.failed} failed, ${c['maybe-sent']} maybe sent` : ''),
      );
      print(
        `SMTP catcher: ${smtp.stats.accepted} messages to ${recipients.size} distinct addresses ` +
          `(${duplicates} received more than one) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    },
    close: () => smtp.close(),
  };
}
