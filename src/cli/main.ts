#!/usr/bin/env node
/**
 * `guardian-sync` command line: worker, sync, runs, run, rejects, remap, approve, discard, cancel,
 * demo.
 * Configuration errors exit with status 2 and a message naming each bad variable or key.
 */
import { readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { config as loadDotenv } from 'dotenv';
import { createApp, type AppContext } from '../app.js';
import { parseEnv } from '../config/env.js';
import { watchDistrictFiles } from '../config/reload.js';
import { ConfigError, describeError, explainError } from '../errors.js';
import { approveRun, discardRun, triggerSync } from '../jobs/sync.js';
import { rejectsCsv } from '../jobs/rejects.js';
import { checkWebhookSecrets, upsertWebhookSchedulers } from '../jobs/webhooks.js';
import { createLogger } from '../logger.js';
import { closeOnSignals, startWorkers, syncSchedules } from '../workers/index.js';
import { cliActor } from './actor.js';
import { registerApiCommands } from './api.js';
import { registerAuditCommands } from './audit.js';
import { registerCancelCommands, waitWithTimeout, workerWaitNote } from './cancel.js';
import { registerCodesCommands } from './codes.js';
import { runDemo } from './demo.js';
import { registerHeldCommands } from './held.js';
import { registerImportCommands } from './imports.js';
import { registerActivationCommands } from './notifications.js';
import { registerSandboxCommands } from './sandbox.js';
import { formatRemap, formatRun, formatRunList } from './format.js';

/** Parse a whole-number option; commander reports the option name on error. */
export function intOption(min = 0): (value: string) => number {
  return value => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`must be a whole number ≥ ${min}, got "${value}"`);
    return n;
  };
}

function packageVersion(): string {
  try {
    const raw = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    const v = (JSON.parse(raw) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Exit status of `sync --wait` per run status (documented in the README). */
export const WAIT_EXIT_CODES: Record<string, number> = {
  failed: 1,
  'needs-approval': 3,
  cancelled: 5,
};

async function withApp<T>(fn: (ctx: AppContext) => Promise<T>): Promise<T> {
  const env = parseEnv();
  // Command output goes to stdout; logs go to stderr so the two never mix. A command logs
  // warnings and errors only, unless LOG_LEVEL is set (environment or .env).
  const level = process.env.LOG_LEVEL ? env.LOG_LEVEL : 'warn';
  const logger = createLogger(level, { format: env.LOG_FORMAT });
  const ctx = await createApp({ env, logger });
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

export function buildProgram(): Command {
  const program = new Command('guardian-sync')
    .description('Keeps parent accounts and guardian links in step with a district SIS')
    .version(packageVersion())
    .showHelpAfterError();

  program
    .command('worker')
    .description("run the queue workers and the districts' cron schedules until SIGTERM/SIGINT")
    .option('--concurrency <n>', 'apply jobs in parallel', intOption(1))
    .action(async (opts: { concurrency?: number }) => {
      const env = parseEnv();
      const logger = createLogger(env.LOG_LEVEL, { format: env.LOG_FORMAT });
      const ctx = await createApp({ env, logger });
      try {
        // Fail at start, not at 2 a.m.: every district's secrets must be there now.
        for (const d of ctx.districts.values()) ctx.connectorFor(d);
        checkWebhookSecrets(ctx);
      } catch (err) {
        await ctx.close();
        throw err;
      }
      const schedules = await syncSchedules(ctx);
      await upsertWebhookSchedulers(ctx); // webhook sweep and change-log retention
      const running = startWorkers(ctx, { concurrency: opts.concurrency });
      // District files added or changed later: reloaded, and the cron schedules follow.
      watchDistrictFiles(ctx, { onReload: () => syncSchedules(ctx).then(() => undefined) });
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
    .option(
      '--timeout <s>',
      'with --wait: stop waiting after s seconds (exit status 4; the run keeps going)',
      intOption(1),
    )
    .action(
      async (districtId: string, opts: { dryRun: boolean; wait: boolean; timeout?: number }) => {
        await withApp(async ctx => {
          const { run, started } = await triggerSync(ctx, {
            districtId,
            dryRun: opts.dryRun,
            trigger: 'cli',
            actor: cliActor(),
          });
          console.log(
            started
              ? `run ${run.id} queued`
              : `run ${run.id} is already ${run.status}; not starting another`,
          );
          if (opts.wait) {
            if ((await ctx.queues.pull.getWorkers()).length === 0)
              console.error(
                'warning: no worker is connected to the queues; the run starts when one is (guardian-sync worker)',
              );
            const done = await waitWithTimeout(ctx, run.id, opts.timeout);
            if (!done) return;
            console.log(formatRun(done));
            process.exitCode = WAIT_EXIT_CODES[done.status] ?? 0;
          }
        });
      },
    );

  program
    .command('runs <district>')
    .description('list recent runs of a district')
    .option('-n, --limit <n>', 'how many', intOption(1), 20)
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
        const note = await workerWaitNote(ctx, run);
        if (note) console.log(note);
      });
    });

  program
    .command('remap <runId>')
    .description('show the remap (old sourcedId → new) a run held as a probable re-key proposes')
    .action(async (runId: string) => {
      await withApp(async ctx => {
        const run = await ctx.store.getRun(runId);
        if (!run) throw new ConfigError(`no run ${runId}`);
        const totals = await ctx.store.countDeferredStudents(runId);
        const rows = await ctx.store.listDeferredStudents(runId, { onlyRemapped: true });
        console.log(formatRemap(run, totals, rows));
      });
    });

  program
    .command('rejects <runId>')
    .description(
      "list a run's rejects (records refused) and exclusions (records left out by a rule) as CSV",
    )
    .addOption(
      new Option('--kind <kind>', 'only one kind').choices(['rejected', 'excluded'] as const),
    )
    .action(async (runId: string, opts: { kind?: 'rejected' | 'excluded' }) => {
      await withApp(async ctx => {
        const run = await ctx.store.getRun(runId);
        if (!run) throw new ConfigError(`no run ${runId}`);
        await pipeline(rejectsCsv(ctx.store, run.id, { kind: opts.kind }), process.stdout, {
          end: false,
        });
      });
    });

  program
    .command('approve <runId>')
    .description('apply the deactivations a needs-approval run holds')
    .action(async (runId: string) => {
      await withApp(async ctx => console.log(formatRun(await approveRun(ctx, runId, cliActor()))));
    });

  program
    .command('discard <runId>')
    .description('drop the deactivations a needs-approval run holds')
    .action(async (runId: string) => {
      await withApp(async ctx => console.log(formatRun(await discardRun(ctx, runId, cliActor()))));
    });

  program
    .command('demo')
    .description(
      'sync a seeded district from a local fake PowerSchool into SQLite and print the runs',
    )
    .option('--students <n>', 'district size', intOption(1), 1500)
    .option('--seed <n>', 'generator seed', intOption(0), 7)
    .option(
      '--activation-rate-per-hour <n>',
      'cap on activation emails per hour (default 500, shows deferral; 0: no cap)',
      v => Number(v),
    )
    .action(async (opts: { students: number; seed: number }) => {
      await runDemo(opts);
    });
  registerApiCommands(program);
  registerActivationCommands(program, withApp);
  registerCodesCommands(program, withApp);
  registerImportCommands(program, withApp);
  registerAuditCommands(program, withApp);
  registerHeldCommands(program, withApp);
  registerCancelCommands(program, withApp);
  registerSandboxCommands(program);
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
    // Admin-grade message (what, where, how to fix); class names only with LOG_LEVEL=debug.
    if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace')
      console.error(`debug: ${describeError(err)}`);
    console.error(`error: ${explainError(err)}`);
    process.exit(1);
  }
}

void main();
