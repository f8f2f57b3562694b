/**
 * Manual association commands (src/imports/manual.ts):
 * - `guardian-sync students <district> <query> [--limit n]`: active students whose first or
 *   last name starts with the query (case and accents ignored), one per line;
 * - `guardian-sync associate <district> <parentId> <studentUniqueId>`: link origin `manual`;
 * - `guardian-sync unassociate <district> <parentId> <studentUniqueId>`: deactivate that
 *   manual link (other origins are never touched).
 * Refused requests print the reason and exit with status 1 (`ManualAssociationError` is a
 * `GuardianSyncError`, reported by `main`).
 */
import { cliActor } from './actor.js';
import type { Command } from 'commander';
import type { AppContext } from '../app.js';
import {
  associate,
  removeAssociation,
  searchStudents,
  type AssociationResult,
} from '../imports/manual.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

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

  program
    .command('associate <district> <parentId> <studentUniqueId>')
    .description('associate a parent account with a student (link origin manual)')
    .action(async (districtId: string, parentId: string, studentUniqueId: string) => {
      await withApp(async ctx =>
        console.log(
          formatResult(
            await associate(ctx, { districtId, parentId, studentUniqueId, actor: cliActor() }),
          ),
        ),
      );
    });

  program
    .command('unassociate <district> <parentId> <studentUniqueId>')
    .description('remove a manual association (deactivates the manual link; other links stay)')
    .action(async (districtId: string, parentId: string, studentUniqueId: string) => {
      await withApp(async ctx =>
        console.log(
          formatResult(
            await removeAssociation(ctx, {
              districtId,
              parentId,
              studentUniqueId,
              actor: cliActor(),
            }),
          ),
        ),
      );
    });
}
