/**
 * `guardian-sync sandbox` (`npm run sandbox -- …`): a persistent fake SIS to follow the README
 * against (src/dev/sandbox.ts). `sandbox --sis <kind>` starts or resumes it, writes the
 * district file and the missing `.env` entries, prints the next commands and (for the served
 * kinds) serves until SIGINT/SIGTERM; `sandbox change <kind> --sis <kind>` scripts a change.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { Argument, InvalidArgumentError, Option } from 'commander';
import {
  applySandboxChange,
  mergeEnvFile,
  SandboxChangeKind,
  SandboxSis,
  startSandbox,
  type RunningSandbox,
} from '../dev/sandbox.js';

const intArg = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`must be a whole number ≥ ${min}, got "${value}"`);
  return n;
};

const sisOption = () =>
  new Option('--sis <kind>', 'which SIS to play').choices(SandboxSis.options).makeOptionMandatory();

interface StartOptions {
  sis: SandboxSis;
  students?: number;
  seed?: number;
  port?: number;
  dir?: string;
  reset: boolean;
  envFile: string;
  districtsDir?: string;
}

/** The district file's path under the districts folder; written when its content changed. */
function writeDistrictFile(dir: string, s: RunningSandbox): { path: string; changed: boolean } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${s.districtId}.json`);
  const text = `${JSON.stringify(s.district, null, 2)}\n`;
  const changed = !existsSync(path) || readFileSync(path, 'utf8') !== text;
  if (changed) writeFileSync(path, text);
  return { path, changed };
}

/**
 * Start or resume a sandbox, write its district file and `.env` entries, print what to do
 * next. Returns the running sandbox (served kinds keep serving until it is closed).
 */
export async function runSandboxStart(
  opts: StartOptions,
  print: (line: string) => void = l => console.log(l),
): Promise<RunningSandbox> {
  const dir = opts.dir ?? join('data', 'sandbox', opts.sis);
  const s = await startSandbox({
    dir,
    sis: opts.sis,
    students: opts.students,
    seed: opts.seed,
    port: opts.port,
    reset: opts.reset,
    log: print,
  });
  const served = s.location.startsWith('http');
  const c = s.counts();
  print(
    `sandbox ${s.sis}: ${served ? `fake SIS at ${s.location}` : `files in ${s.location}`} — ` +
      `${c.activeStudents} active students (${c.students} in all), ${c.schools} schools, ${c.contacts} contacts; ` +
      `${s.changesApplied()} scripted changes (state ${join(dir, 'state.json')})`,
  );
  const file = writeDistrictFile(
    opts.districtsDir ?? process.env.DISTRICTS_DIR ?? 'config/districts',
    s,
  );
  print(
    `district file ${file.path} (district id ${s.districtId})${file.changed ? '' : ', unchanged'}`,
  );
  if (Object.keys(s.env).length) {
    const merged = mergeEnvFile(opts.envFile, s.env, `guardian-sync sandbox (${s.sis})`);
    if (merged.added.length) print(`${opts.envFile}: added ${merged.added.join(', ')}`);
    if (merged.present.length) print(`${opts.envFile}: already set ${merged.present.join(', ')}`);
    for (const x of merged.conflicts)
      print(
        `${opts.envFile}: ${x.name} is set to another value; left alone — the sandbox needs ${x.name}=${x.wanted}`,
      );
  }
  const id = s.districtId;
  print('');
  print(served ? 'next, in another terminal:' : 'next:');
  print('  npm run cli -- worker                  # or: npm run build && npm start');
  print(`  npm run cli -- sync ${id} --wait`);
  print(`  npm run sandbox -- change new-guardian --sis ${s.sis}`);
  print(`  npm run sandbox -- change withdraw-student --sis ${s.sis}`);
  print(`  npm run cli -- sync ${id} --wait`);
  print(`  npm run sandbox -- change mass-withdraw --sis ${s.sis}   # the next run is held`);
  print(`  npm run cli -- sync ${id} --wait       # exit status 3; then approve or discard`);
  print(
    served
      ? `Ctrl-C stops the fake SIS; its state stays in ${dir} (--reset starts over).`
      : `The files stay in ${s.location}; changes rewrite them (--reset starts over).`,
  );
  return s;
}

/** Add `sandbox` (start) and `sandbox change` to the program. */
export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description(
      'a persistent fake SIS with a seeded district to try the worker, CLI and API against',
    );
  sandbox
    .command('start', { isDefault: true })
    .description(
      'start or resume the sandbox; write its district file and .env entries (default command)',
    )
    .addOption(sisOption())
    .option('--students <n>', 'size of a new sandbox (default 500)', intArg(1))
    .option('--seed <n>', 'generator seed of a new sandbox (default 7)', intArg(0))
    .option('--port <n>', 'loopback port of the fake SIS (default 18701-18704 per SIS)', intArg(0))
    .option('--dir <path>', 'state folder (default data/sandbox/<sis>)')
    .option('--reset', 'drop the saved state and start over', false)
    .option('--env-file <path>', 'dotenv file to add the credentials to', '.env')
    .option('--districts-dir <path>', 'where to write the district file (default DISTRICTS_DIR)')
    .action(async (opts: StartOptions) => {
      const s = await runSandboxStart(opts);
      if (!s.location.startsWith('http')) return;
      await new Promise<void>(resolve => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await s.close();
      console.log('sandbox stopped; state kept');
    });
  sandbox
    .command('change')
    .description('script a change into the sandbox district')
    .addArgument(new Argument('<kind>', 'what changes').choices(SandboxChangeKind.options))
    .addOption(sisOption())
    .option('--dir <path>', 'state folder (default data/sandbox/<sis>)')
    .action(async (kind: SandboxChangeKind, opts: { sis: SandboxSis; dir?: string }) => {
      const dir = opts.dir ?? join('data', 'sandbox', opts.sis);
      const r = await applySandboxChange(dir, kind);
      console.log(`change ${r.total}: ${r.change.description}`);
      if (r.served === 'files-written') console.log('files rewritten');
      else if (r.served === 'served') console.log('the running sandbox serves it now');
      else
        console.log(
          `no running sandbox served it yet; it is saved and served when the sandbox starts (npm run sandbox -- --sis ${opts.sis})`,
        );
    });
}
