/**
 * Manual association commands (src/imports/manual.ts):
 * - `guardian-sync students <district> <query> [--limit n]`: active students whose first or
 *   last name starts with the query (case and accents ignored), one per line;
 * - `guardian-sync associate <district> <parent> <studentUniqueId> [--by id|uniqueId|email]`:
 *   link origin `manual`;
 * - `guardian-sync unassociate <district> <parent> <studentUniqueId> [--by …]`: deactivate that
 *   manual link (other origins are never touched).
 * `<parent>` is the parent's account id, Unique ID or email (`resolveParent`; an email shared
 * by several accounts is refused, naming them). Refused requests print the reason and exit
 * with status 1; unknown parents or students exit 4 (src/cli/exit.ts).
 */
import { cliActor } from './actor.js';
import { InvalidArgumentError, type Command } from 'commander';
import { ParentRefKind, resolveParent } from '../audit/service.js';
import type { AppContext } from '../app.js';
import {
  associate,
  removeAssociation,
  searchStudents,
  type AssociationResult,
} from '../imports/manual.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

function parentRefKind(v: string): ParentRefKind {
  const r = ParentRefKind.safeParse(v);
  if (!r.success)
    throw new InvalidArgumentError(
      `expected one of ${ParentRefKind.options.join(', ')}, got "${v}"`,
    );
  return r.data;
}

/** The account id of the parent `ref` names (account id, Unique ID or email). */
async function parentAccountId(
  ctx: AppContext,
  districtId: string,
  ref: string,
  by: ParentRefKind | undefined,
): Promise<string> {
  ctx.district(districtId);
  return (await resolveParent(ctx, districtId, ref, by)).id;
}

function formatResult(r: AssociationResult): string {
  const other =
    r.otherActiveOrigins.length > 0
      ? `  (other active links: ${r.otherActiveOrigins.join(', ')})`
      : '';
  return `${r.status}  parent ${r.parentId}  student ${r.studentUniqueId} (${r.studentSourcedId})${other}`;
}

/** Add `students`, `associate` and `unassociate` to `program`. */
export function registerAssociationCommands(program: Command, withApp: WithApp): void {
  program
    .command('students <district> <query>')
    .description('search active students by first- or last-name prefix (case/accent-insensitive)')
    .option('--limit <n>', 'most results (1-100)', v => Number(v), 20)
    .action(async (districtId: string, q: string, o: { limit: number }) => {
      await withApp(async ctx => {
        const hits = await searchStudents(ctx, { districtId, q, limit: o.limit });
        if (hits.length === 0) console.log(`no active student matches "${q}"`);
        for (const s of hits)
          console.log(
            [
              s.uniqueId,
              `${s.familyName}, ${s.givenName}`,
              s.grade ?? '-',
              s.schoolSourcedIds.join(' '),
              s.sourcedId,
            ].join('\t'),
          );
      });
    });

  const by = 'read <parent> only as this kind of reference: id, uniqueId or email (default: any)';
  const commands = [
    {
      name: 'associate',
      description:
        'associate a parent account (account id, Unique ID or email) with a student (link origin manual)',
      apply: associate,
    },
    {
      name: 'unassociate',
      description:
        'remove a manual association (deactivates the manual link; other links stay); parent by account id, Unique ID or email',
      apply: removeAssociation,
    },
  ] as const;
  for (const c of commands) {
    program
      .command(`${c.name} <district> <parent> <studentUniqueId>`)
      .description(c.description)
      .option('--by <kind>', by, parentRefKind)
      .action(
        async (
          districtId: string,
          ref: string,
          studentUniqueId: string,
          o: { by?: ParentRefKind },
        ) => {
          await withApp(async ctx => {
            const parentId = await parentAccountId(ctx, districtId, ref, o.by);
            const result = await c.apply(ctx, {
              districtId,
              parentId,
              studentUniqueId,
              actor: cliActor(),
            });
            console.log(formatResult(result));
          });
        },
      );
  }
}
