/**
 * `guardian-sync demo`: the whole path on one machine. Starts a fake PowerSchool on
 * loopback fed by the seeded district generator, runs the queue workers in this process
 * against the local Redis, syncs into a fresh SQLite file under ./data/, then changes a
 * few things in the SIS and syncs twice more (changes only, then nothing).
 */
import { rmSync } from 'node:fs';
import { createApp } from '../app.js';
import { DistrictConfig } from '../config/district.js';
import { parseEnv } from '../config/env.js';
import {
  addGuardian,
  changeEmail,
  expectedRoster,
  generateDistrict,
  withdrawStudent,
} from '../dev/district-generator.js';
import { startFakePowerSchool } from '../dev/powerschool-server.js';
import { triggerSync, waitForRun } from '../jobs/sync.js';
import { createLogger } from '../logger.js';
import { startWorkers } from '../workers/index.js';
import { cliActor } from './actor.js';
import { startDemoMail } from './demo-notifications.js';
import { formatRun } from './format.js';
import type { SyncRun } from '../models/types.js';

export interface DemoOptions {
  students: number;
  seed: number;
  /** SQLite file (default ./data/demo.db; replaced on each demo). */
  dbPath?: string;
  /** Where to print (default console.log). */
  print?: (line: string) => void;
  /** Activation emails per hour for the demo district (default 500; 0: no cap). */
  activationRatePerHour?: number;
}

/** Run the demo; returns the three finished runs (for tests). */
export async function runDemo(opts: DemoOptions) {
  const print = opts.print ?? ((l: string) => console.log(l));
  const dbPath = opts.dbPath ?? './data/demo.db';
  for (const suffix of ['', '-wal', '-shm']) rmSync(dbPath + suffix, { force: true });
  const mail = await startDemoMail({ ratePerHour: opts.activationRatePerHour });
  const env = parseEnv({
    ...process.env,
    SMTP_URL: mail.smtpUrl,
    NOTIFY_CONCURRENCY: process.env.NOTIFY_CONCURRENCY ?? '16',
    STORE_URL: `sqlite:${dbPath}`,
    QUEUE_PREFIX: `gsync-demo-${process.pid}-${Date.now().toString(36)}`,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  });
  const logger = createLogger(env.LOG_LEVEL);

  const sis = generateDistrict({ seed: opts.seed, students: opts.students });
  const fake = await startFakePowerSchool(sis);
  const district = DistrictConfig.parse({
    id: 'demo-district',
    name: 'Demo Unified School District',
    connector: {
      kind: 'powerschool',
      baseUrl: fake.url,
      clientIdEnv: 'DEMO_PS_CLIENT_ID',
      clientSecretEnv: 'DEMO_PS_CLIENT_SECRET',
    },
    notifications: mail.settings,
  });
  const ctx = await createApp({
    env,
    logger,
    districts: [district],
    secrets: { DEMO_PS_CLIENT_ID: fake.clientId, DEMO_PS_CLIENT_SECRET: fake.clientSecret },
  });
  const workers = startWorkers(ctx);
  const runs: SyncRun[] = [];
  try {
    print(
      `fake PowerSchool at ${fake.url}: ${sis.schools.length} schools, ${sis.students.length} students, ${sis.contacts.length} contacts`,
    );
    print(`store ${env.storeUrl}, redis ${env.REDIS_URL}\n`);

    const sync = async (title: string) => {
      const writesBefore = ctx.store.writeCount();
      const requestsBefore = fake.stats.requests;
      const { run } = await triggerSync(ctx, {
        districtId: district.id,
        dryRun: false,
        trigger: 'cli',
        actor: cliActor(),
      });
      const done = await waitForRun(ctx, run.id, { timeoutMs: 5 * 60 * 1000 });
      print(`== ${title}`);
      print(
        formatRun(done, {
          writes: ctx.store.writeCount() - writesBefore,
          http: `${fake.stats.requests - requestsBefore} requests to PowerSchool`,
        }),
      );
      print('');
      runs.push(done);
      return done;
    };

    await sync('1. initial sync');
    await mail.report(ctx, district.id, print);
    const truth = expectedRoster(sis, { requireDataAccess: true, requireCustodial: false });
    const [students, parents, links] = await Promise.all([
      ctx.store.getStudents(district.id),
      ctx.store.getParents(district.id),
      ctx.store.getLinks(district.id),
    ]);
    print(
      `store now: ${students.filter(s => s.status === 'active').length} active students (SIS truth ${truth.students.length}), ` +
        `${parents.filter(p => p.status === 'active').length} parent accounts (truth ${truth.accounts.length}), ` +
        `${links.filter(l => l.status === 'active').length} guardian links (truth ${truth.links.length})\n`,
    );

    const first = sis.students[0];
    const withdrawn = sis.students[1];
    const someone = sis.contacts.find(c => c.email && c.links.some(l => l.canAccessData));
    if (first) addGuardian(sis, first.id);
    if (someone) changeEmail(sis, someone.contactId, `new.${someone.contactId}@example.net`);
    if (withdrawn) withdrawStudent(sis, withdrawn.id);
    print('SIS changes: one new guardian, one changed email, one withdrawn student\n');
    await sync('2. resync after changes');
    await sync('3. resync with no changes (expect 0 writes)');
  } finally {
    await workers.close();
    for (const q of Object.values(ctx.queues))
      await q.obliterate({ force: true }).catch(() => undefined);
    await ctx.close();
    await fake.close();
    await mail.close();
  }
  return runs;
}
