/**
 * The audit from the command line (src/audit/service.ts):
 * - `guardian-sync why <district> <student> [--by sourcedId|uniqueId] [--json]`: who is linked
 *   to the student (sourcedId or Unique ID) and why — one row per link, active ones first;
 * - `guardian-sync parent <district> <parent> [--by id|uniqueId|email] [--after n] [--limit n]
 *   [--json]`: the parent account (id, Unique ID or email), its children and its history.
 * Labelled tables by default; `--json` prints the service's answer for scripts. Unknown
 * references exit with status 4, ambiguous ones print the reason (naming the candidates) and
 * exit with status 1 (src/cli/exit.ts)
 * (`AuditError` is a `GuardianSyncError`, reported by `main`).
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { AppContext } from '../app.js';
import {
  auditTime,
  DEFAULT_HISTORY_LIMIT,
  MAX_HISTORY_LIMIT,
  parentHistory,
  ParentRefKind,
  StudentRefKind,
  whyLinked,
  type LinkAudit,
  type ParentHistory,
  type StudentGuardians,
} from '../audit/service.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

/** Columns padded to their widest cell (the last column is not padded). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `label   value` lines with the labels padded to the widest. */
function labelled(pairs: readonly (readonly [string, string | undefined])[]): string {
  const shown = pairs.filter((p): p is readonly [string, string] => p[1] !== undefined);
  const w = Math.max(...shown.map(([k]) => k.length));
  return shown.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

/** STATUS, ORIGIN, ACTOR and WHY cells of a link (the sentence has the cause and date). */
function linkCells(l: LinkAudit): string[] {
  return [
    l.status,
    l.origin + (l.relationship !== undefined ? ` (${l.relationship})` : ''),
    l.how?.actor ?? '-',
    l.explanation,
  ];
}

/** `why`'s answer as text: the student, then one row per link. */
export function formatStudentGuardians(r: StudentGuardians): string {
  const s = r.student;
  const out = [
    labelled([
      ['student', `${s.uniqueId ?? '-'}  ${s.name}`],
      ['sourcedId', s.sourcedId],
      ['status', `${s.status ?? '-'}${s.grade !== undefined ? `, grade ${s.grade}` : ''}`],
      ['district', r.districtId],
      ['links', `${r.counts.active} active, ${r.counts.inactive} inactive`],
    ]),
  ];
  if (r.guardians.length === 0) out.push('', 'no guardian is linked to this student');
  else out.push('', guardianTable(r));
  return out.join('\n');
}

function guardianTable(r: StudentGuardians): string {
  return table(
    ['PARENT', 'UNIQUE ID', 'NAME', 'EMAIL', 'STATUS', 'ORIGIN', 'ACTOR', 'WHY'],
    r.guardians.map(g => [
      g.parent.id,
      g.parent.uniqueId ?? '-',
      g.parent.name,
      g.parent.email ?? '-',
      ...linkCells(g),
    ]),
  );
}

/** `parent`'s answer as text: the account, its children, one page of history. */
export function formatParentHistory(r: ParentHistory): string {
  const a = r.account;
  const out = [
    labelled([
      ['account', a.id],
      ['unique ID', a.uniqueId ?? '-'],
      ['name', a.name],
      ['email', a.email ?? '-'],
      ['phone', a.phone],
      ['role', `${a.role}${a.sisRole !== undefined ? ` (SIS: ${a.sisRole})` : ''}`],
      ['status', a.status],
      ['origin', a.origin],
      [
        'sources',
        a.sources.length ? a.sources.map(s => `${s.connector}:${s.sourcedId}`).join(', ') : '-',
      ],
      ['locked', a.lockedFields.length ? a.lockedFields.join(', ') : undefined],
      ['created', a.explanation],
      ['children', `${r.counts.activeChildren} active, ${r.counts.inactiveChildren} inactive`],
    ]),
  ];
  if (r.children.length > 0)
    out.push(
      '',
      table(
        ['STUDENT', 'UNIQUE ID', 'NAME', 'STATUS', 'ORIGIN', 'ACTOR', 'WHY'],
        r.children.map(c => [
          c.student.sourcedId,
          c.student.uniqueId ?? '-',
          c.student.name,
          ...linkCells(c),
        ]),
      ),
    );
  const h = r.history;
  out.push('', `history (entries after seq ${h.afterSeq}, at most ${h.limit})`);
  if (h.entries.length === 0) out.push('no entries');
  else
    out.push(
      table(
        ['SEQ', 'AT', 'ACTOR', 'WHAT'],
        h.entries.map(e => [String(e.seq), auditTime(e.at), e.actor, e.sentence]),
      ),
    );
  if (h.nextAfter !== null) out.push(`more: --after ${h.nextAfter}`);
  return out.join('\n');
}

function choice<T extends string>(values: readonly T[]): (v: string) => T {
  return v => {
    if (!(values as readonly string[]).includes(v))
      throw new InvalidArgumentError(`expected one of ${values.join(', ')}, got "${v}"`);
    return v as T;
  };
}

function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return v => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}, got "${v}"`);
    return n;
  };
}

const json = (v: unknown) => JSON.stringify(v, null, 2);

/** Add `why` and `parent` to `program`. */
export function registerAuditCommands(program: Command, withApp: WithApp): void {
  program
    .command('why <district> <student>')
    .description('who is linked to this student (sourcedId or Unique ID) and why')
    .option(
      '--by <kind>',
      'read <student> only as sourcedId or uniqueId',
      choice(StudentRefKind.options),
    )
    .option('--json', 'print JSON (for scripts)', false)
    .action(
      async (districtId: string, student: string, o: { by?: StudentRefKind; json: boolean }) => {
        await withApp(async ctx => {
          const r = await whyLinked(ctx, districtId, student, { by: o.by });
          console.log(o.json ? json(r) : formatStudentGuardians(r));
        });
      },
    );

  program
    .command('parent <district> <parent>')
    .description('a parent account (id, Unique ID or email): fields, children and history')
    .option(
      '--by <kind>',
      'read <parent> only as id, uniqueId or email',
      choice(ParentRefKind.options),
    )
    .option('--after <seq>', 'history entries after this sequence number', wholeNumber(0), 0)
    .option(
      '-n, --limit <n>',
      `history entries to show (1-${MAX_HISTORY_LIMIT})`,
      wholeNumber(1, MAX_HISTORY_LIMIT),
      DEFAULT_HISTORY_LIMIT,
    )
    .option('--json', 'print JSON (for scripts)', false)
    .action(
      async (
        districtId: string,
        parent: string,
        o: { by?: ParentRefKind; after: number; limit: number; json: boolean },
      ) => {
        await withApp(async ctx => {
          const r = await parentHistory(ctx, districtId, parent, {
            by: o.by,
            afterSeq: o.after,
            limit: o.limit,
          });
          console.log(o.json ? json(r) : formatParentHistory(r));
        });
      },
    );
}
