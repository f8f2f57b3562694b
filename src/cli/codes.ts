/**
 * `guardian-sync codes …`: Parent Access Codes from the command line — issue, reset,
 * export (CSV), settings, and a few lookups. Thin wrappers over src/access-codes/.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { AppContext } from '../app.js';
import { table } from './audit.js';
import {
  blankCodesNote,
  exportDistrictCodes,
  exportSectionCodes,
  listSections,
} from '../access-codes/export.js';
import {
  getAccessCodeSettings,
  issueAccessCodes,
  listAccessCodeResets,
  resetAccessCodes,
  studentAccessCodes,
  updateAccessCodeSettings,
  type SettingsView,
} from '../access-codes/service.js';
import { commandPrefix, EXIT, toJson, UsageError } from './exit.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

/** `cli:<os user>` (who ran the command), for reset and settings records. */
export function defaultActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** Student ids from a file: one per line, or the first column of a CSV (header skipped). */
export async function idsFromFile(path: string): Promise<string[]> {
  const text = (await readFile(path, 'utf8')).replace(/^\uFEFF/, '');
  const out: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const first = line.split(',')[0]?.replace(/^"|"$/g, '').trim() ?? '';
    if (first === '' || (i === 0 && /[a-z]/i.test(first) && /id/i.test(first))) return;
    out.push(first);
  });
  return out;
}

/** Settings view as a few lines (effective value, and where it comes from). */
export function formatSettings(v: SettingsView): string {
  const src = (k: 'enabled' | 'defaultRole' | 'issueTo') =>
    v.override?.[k] !== undefined ? `override by ${v.override.updatedBy}` : 'district file';
  return [
    `access codes for ${v.districtId}:`,
    `  enabled      ${String(v.effective.enabled).padEnd(10)} (${src('enabled')})`,
    `  defaultRole  ${v.effective.defaultRole.padEnd(10)} (${src('defaultRole')})`,
    `  issueTo      ${v.effective.issueTo.padEnd(10)} (${src('issueTo')})`,
  ].join('\n');
}

/** Add the `codes` command group to `program`. */
export function registerCodesCommands(program: Command, withApp: WithApp): void {
  const codes = program.command('codes').description('Parent Access Codes');

  codes
    .command('issue <district>')
    .description('issue codes now to the students who need one (as a sync finalize would)')
    .option('--actor <name>', 'who asks (recorded)', defaultActor())
    .action(async (districtId: string, o: { actor: string }) => {
      await withApp(async ctx => {
        const caps = ctx.connectorFor(ctx.district(districtId)).capabilities;
        const r = await issueAccessCodes(ctx, { districtId, actor: o.actor }, caps);
        console.log(`${r.issued} code(s) issued; ${r.active} active code(s) in ${r.districtId}`);
      });
    });

  codes
    .command('reset <district>')
    .description(
      'reset codes (the old code stops working at once; links already made stay) and issue new ones',
    )
    .option('-s, --student <uniqueId>', 'a student by Unique ID (repeatable)', collect)
    .option('--sourced-id <id>', 'a student by SIS sourcedId (repeatable)', collect)
    .option('-f, --file <path>', 'Unique IDs, one per line (or first CSV column)')
    .option('--all', 'every student of the district that holds a code')
    .option('--yes', 'confirm --all')
    .option('--actor <name>', 'who asks (recorded)', defaultActor())
    .action(
      async (
        districtId: string,
        o: {
          student?: string[];
          sourcedId?: string[];
          file?: string;
          all?: boolean;
          yes?: boolean;
          actor: string;
        },
      ) => {
        const uniqueIds = [...(o.student ?? []), ...(o.file ? await idsFromFile(o.file) : [])];
        const given = [uniqueIds.length > 0, (o.sourcedId?.length ?? 0) > 0, o.all === true];
        if (given.filter(Boolean).length !== 1)
          throw new UsageError('give exactly one of --student/--file, --sourced-id or --all');
        if (o.all && !o.yes)
          throw new UsageError('--all resets every code of the district; add --yes to confirm');
        await withApp(async ctx => {
          const r = await resetAccessCodes(ctx, {
            districtId,
            actor: o.actor,
            ...(o.all ? { all: true } : {}),
            ...(uniqueIds.length ? { uniqueIds } : {}),
            ...(o.sourcedId?.length ? { studentSourcedIds: o.sourcedId } : {}),
          });
          console.log(
            `reset ${r.id} (${r.scope}) by ${r.actor} at ${r.at}: ${r.requested} requested, ${r.revoked} revoked, ${r.issued} issued`,
          );
          for (const c of r.codes) console.log(`  ${c.studentSourcedId}\t${c.code}`);
          if (r.notFound.length) {
            console.log(`not found: ${r.notFound.join(', ')}`);
            process.exitCode = EXIT.notFound;
          }
        });
      },
    );

  codes
    .command('export <district>')
    .description('CSV of students and their codes (UTF-8 with BOM), whole district or one section')
    .option('--section <sourcedId>', 'only the students of this course section')
    .option('-o, --output <file>', 'write to a file (default: stdout)')
    .action(async (districtId: string, o: { section?: string; output?: string }) => {
      await withApp(async ctx => {
        const dl = o.section
          ? await exportSectionCodes(ctx, { districtId, sectionSourcedId: o.section })
          : await exportDistrictCodes(ctx, { districtId });
        if (o.output) {
          await pipeline(dl.stream, createWriteStream(o.output));
          console.error(`wrote ${o.output}`);
        } else {
          await pipeline(dl.stream, process.stdout, { end: false });
        }
        // Blank codes are never silent: how many, why, and how to issue them now.
        if (dl.tally.withoutCode > 0)
          console.error(
            `note: ${blankCodesNote(districtId, dl.tally.withoutCode, dl.tally.rows, dl.issueTo, commandPrefix())}`,
          );
      });
    });

  codes
    .command('settings <district>')
    .description('show or change the access-code settings (changes override the district file)')
    .option('--enable', 'enable access codes')
    .option('--disable', 'disable access codes')
    .option('--role <name>', 'role of parents who register with a code')
    .option('--issue-to <who>', '"unlinked" (students without a guardian link) or "all"')
    .option('--clear <field>', 'drop an override: enabled, defaultRole or issueTo', collect)
    .option('--actor <name>', 'who changes it (recorded)', defaultActor())
    .action(
      async (
        districtId: string,
        o: {
          enable?: boolean;
          disable?: boolean;
          role?: string;
          issueTo?: string;
          clear?: string[];
          actor: string;
        },
      ) => {
        if (o.enable && o.disable) throw new UsageError('--enable and --disable together');
        const change: Record<string, unknown> = {};
        if (o.enable || o.disable) change.enabled = o.enable === true;
        if (o.role !== undefined) change.defaultRole = o.role;
        if (o.issueTo !== undefined) change.issueTo = o.issueTo;
        for (const f of o.clear ?? []) {
          if (!['enabled', 'defaultRole', 'issueTo'].includes(f))
            throw new UsageError(`--clear ${f}: expected enabled, defaultRole or issueTo`);
          change[f] = null;
        }
        await withApp(async ctx => {
          const v =
            Object.keys(change).length === 0
              ? await getAccessCodeSettings(ctx, { districtId })
              : await updateAccessCodeSettings(ctx, { districtId, actor: o.actor, ...change });
          console.log(formatSettings(v));
        });
      },
    );

  codes
    .command('sections <district>')
    .description('list the course sections (for export --section)')
    .option('--json', 'print JSON (for scripts)', false)
    .action(async (districtId: string, o: { json: boolean }) => {
      await withApp(async ctx => {
        const sections = await listSections(ctx, { districtId });
        if (o.json) return console.log(toJson(sections));
        if (!sections.length) return console.log(`no sections in ${districtId}`);
        console.log(
          table(
            ['section', 'students', 'title'],
            sections.map(s => [s.sourcedId, String(s.students), s.title]),
          ),
        );
      });
    });

  codes
    .command('show <district> <uniqueId>')
    .description("a student's codes (active and revoked)")
    .option('--json', 'print JSON (for scripts)', false)
    .action(async (districtId: string, uniqueId: string, o: { json: boolean }) => {
      await withApp(async ctx => {
        const r = await studentAccessCodes(ctx, { districtId, uniqueId });
        if (o.json) return console.log(toJson(r));
        console.log(`student ${uniqueId} (sourcedId ${r.studentSourcedId})`);
        for (const c of r.codes)
          console.log(
            `  ${c.formatted}  ${c.status}  issued ${c.createdAt}${c.revokedAt ? `  revoked ${c.revokedAt}` : ''}`,
          );
      });
    });

  codes
    .command('resets <district>')
    .description('recorded resets (who, when, how many), newest first')
    .option('-n, --limit <n>', 'how many', v => Number(v), 20)
    .option('--json', 'print JSON (for scripts)', false)
    .action(async (districtId: string, o: { limit: number; json: boolean }) => {
      await withApp(async ctx => {
        const resets = await listAccessCodeResets(ctx, { districtId, limit: o.limit });
        if (o.json) return console.log(toJson(resets));
        if (!resets.length) return console.log(`no resets in ${districtId}`);
        console.log(
          table(
            ['at', 'by', 'scope', 'requested', 'revoked', 'issued', 'reset'],
            resets.map(r => [
              r.at,
              r.actor,
              r.scope,
              String(r.requested),
              String(r.revoked),
              String(r.issued),
              r.id,
            ]),
          ),
        );
      });
    });
}
