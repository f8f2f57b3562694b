#!/usr/bin/env node
/**
 * `guardian-sync` command line: worker, sync, runs, approve, discard, demo.
 * Configuration errors exit with status 2 and a message naming each bad variable or key.
 */
import { Command } from 'commander';
import { config as loadDotenv } from 'dotenv';
import { createApp, type AppContext } from '../app.js';
import { parseEnv } from '../config/env.js';
import { ConfigError, describeError } from '../errors.js';
import { approveRun, discardRun, triggerSync, waitForRun } from '../jobs/sync.js';
import { createLogger } from '../logger.js';
import { closeOnSignals, startWorkers, syncSchedules } from '../workers/index.js';
import { runDemo } from './demo.js';
import { formatRun, formatRunList } from './format.js';

async function withApp<T>(fn: (ctx: AppContext) => Promise<T>): Promise<T> {
  const env = parseEnv();
  const ctx = await createApp({ env, logger: createLogger(env.LOG_LEVEL) });
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

export function buildProgram(): Command {
  const program = new Command('guardian-sync')
    .description('Keeps parent accounts and guardian links in step with a district SIS')
    .showHelpAfterError();

  program
    .command('worker')
    .description("run the queue workers and the districts' cron schedules until SIGTERM/SIGINT")
    .option('--concurrency <n>', 'apply jobs in parallel', v => Number(v))
    .action(async (opts: { concurrency?: number }) => {
      const env = parseEnv();
      const logger = createLogger(env.LOG_LEVEL);
      const ctx = await createApp({ env, logger });
      const schedules = await syncSchedules(ctx);
      const running = startWorkers(ctx, { concurrency: opts.concurrency });
      closeOnSignals(ctx, running);
      logger.info(
        { districts: [...ctx.districts.keys()], schedules: schedules.scheduled },
        'worker started',
      );
    });

  program
    .command('sync <district>')
    .description('start a sync run for a district (a worker must be running)')
    .option('--dry-run', 'compute the plan without writing anything', false)
    .option('--wait', 'wait for the run to finish and print its summary', false)
    .action(async (districtId: string, opts: { dryRun: boolean; wait: boolean }) => {
      await withApp(async ctx => {
        const { run, started } = await triggerSync(ctx, {
          districtId,
          dryRun: opts.dryRun,
          trigger: 'cli',
        });
        console.log(
          started
            ? `run ${run.id} queued`
            : `run ${run.id} is already ${run.status}; not starting another`,
        );
        if (opts.wait) {
          const done = await waitForRun(ctx, run.id);
          console.log(formatRun(done));
          if (done.status === 'failed') process.exitCode = 1;
        }
      });
    });

  program
    .command('runs <district>')
    .description('list recent runs of a district')
    .option('-n, --limit <n>', 'how many', v => Number(v), 20)
    .action(async (districtId: string, opts: { limit: number }) => {
      await withApp(async ctx => {
        ctx.district(districtId);
        console.log(formatRunList(await ctx.store.listRuns(districtId, opts.limit)));
      });
    });

  program
    .command('run <runId>')
    .description('show one run')
    .action(async (runId: string) => {
      await withApp(async ctx => {
        const run = await ctx.store.getRun(runId);
        if (!run) throw new ConfigError(`no run ${runId}`);
        console.log(formatRun(run));
      });
    });

  program
    .command('approve <runId>')
    .description('apply the deactivations a needs-approval run holds')
    .action(async (runId: string) => {
      await withApp(async ctx => console.log(formatRun(await approveRun(ctx, runId))));
    });

  program
    .command('discard <runId>')
    .description('drop the deactivations a needs-approval run holds')
    .action(async (runId: string) => {
      await withApp(async ctx => console.log(formatRun(await discardRun(ctx, runId))));
    });

  program
    .command('demo')
    .description(
      'sync a seeded district from a local fake PowerSchool into SQLite and print the runs',
    )
    .option('--students <n>', 'district size', v => Number(v), 1500)
    .option('--seed <n>', 'generator seed', v => Number(v), 7)
    .action(async (opts: { students: number; seed: number }) => {
      await runDemo(opts);
    });
  return program;
}

async function main(): Promise<void> {
  loadDotenv({ quiet: true });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    console.error(`error: ${describeError(err)}`);
    process.exit(1);
  }
}

void main();
