/**
 * `guardian-sync import parents|associations <district> <file> [options]`: preview an admin
 * import (default), print counts, samples and row issues, optionally write the CSV row report;
 * `--confirm <previewId>` applies that preview (the same file must be given: it is checked
 * against the preview). A summary for people by default; `--json` prints the preview (or the
 * confirm result) as JSON. Exit status (src/cli/exit.ts): 0 previewed/applied, 3 when confirm
 * found the data changed (a new preview is printed; confirm that one), 4 unknown preview.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import type { AppContext } from '../app.js';
import { cliActor } from './actor.js';
import { registerAssociationCommands } from './associations.js';
import { commandPrefix, EXIT, toJson } from './exit.js';
import { ImportFileError } from '../imports/errors.js';
import { DEFAULT_MAX_IMPORT_BYTES } from '../imports/read.js';
import {
  confirmImport,
  importReportCsv,
  previewAssociationImport,
  previewParentImport,
  parseImportOptions,
  type ConfirmResult,
  type ImportHooks,
  type ImportPreview,
} from '../imports/service.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

/** Exit status when confirm found the data changed since the preview. */
export const EXIT_CHANGED = EXIT.decision;

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `field=target` pairs → a record; throws naming the bad pair. */
export function pairs(values: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1)
      throw new ImportFileError(what, `"${v}" is not of the form name=value`);
    out[v.slice(0, i).trim()] = v.slice(i + 1).trim();
  }
  return out;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** `--only column=v1,v2` values → the `only` option (column → values). */
export function onlyOption(values: string[] | undefined): Record<string, string[]> | undefined {
  if (!values?.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const [column, list] of Object.entries(pairs(values, '--only')))
    out[column] = [
      ...(out[column] ?? []),
      ...list
        .split(',')
        .map(v => v.trim())
        .filter(v => v !== ''),
    ];
  return out;
}

/** The options every import kind shares, from the common flags. */
function commonOptions(o: CommonFlags): Record<string, unknown> {
  const only = onlyOption(o.only);
  return {
    ...(o.sheet ? { sheet: o.sheet } : {}),
    ...(o.column ? { columns: pairs(o.column, '--column') } : {}),
    ...(o.headerRow !== undefined ? { headerRow: o.headerRow } : {}),
    ...(only ? { only } : {}),
  };
}

/** One sample item as `field value` pairs (empty fields left out; nested values as JSON). */
function sampleLine(item: Record<string, unknown>): string {
  return Object.entries(item)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v as string)}`)
    .join('  ');
}

/** Plain-text preview: file, rows, counts per action, samples, the first issues. */
export function formatPreview(p: ImportPreview, issueLines = 20): string {
  const f = p.file;
  const lines: string[] = [];
  lines.push(`preview  ${p.previewId}  district ${p.districtId}  ${p.kind}  (${p.status})`);
  const how =
    f.format === 'csv'
      ? `csv, ${f.encoding ?? '?'}, delimiter ${f.delimiter === '\t' ? 'tab' : `"${f.delimiter ?? ','}"`}`
      : `xlsx, sheet "${f.sheet ?? ''}"`;
  lines.push(`file     ${f.name} (${how}, ${f.bytes} bytes)`);
  if (f.headerRow !== undefined && f.headerRow > 1)
    lines.push(
      `header   row ${f.headerRow}${f.rowsAboveHeader ? ` (${plural(f.rowsAboveHeader, 'row')} above it not read)` : ''}`,
    );
  lines.push(
    `columns  ${Object.entries(p.columns)
      .map(([k, v]) => `${k}←"${v}"`)
      .join(', ')}`,
  );
  lines.push(
    `rows     ${p.rows.data} data rows: ${p.rows.used} used, ${p.rows.withErrors} with errors, ${p.rows.withWarnings} with warnings`,
  );
  lines.push(
    `plan     ${Object.entries(p.counts)
      .filter(([k]) => k !== 'errorRows')
      .map(([k, v]) => `${k} ${v}`)
      .join(' · ')}`,
  );
  for (const [action, items] of Object.entries(p.samples)) {
    if (items.length === 0) continue;
    lines.push(`  ${action} (first ${items.length}):`);
    for (const item of items.slice(0, 5)) lines.push(`    ${sampleLine(item)}`);
  }
  lines.push(
    `issues   ${plural(p.issueCount.errors, 'error')}, ${plural(p.issueCount.warnings, 'warning')}`,
  );
  for (const i of p.issues.slice(0, issueLines)) {
    const col = i.column ? `  ${i.column}` : '';
    const val = i.value ? `  "${i.value}"` : '';
    lines.push(`  row ${i.row}${col}${val}  ${i.severity}: ${i.reason}`);
  }
  const total = p.issueCount.errors + p.issueCount.warnings;
  if (total > issueLines) lines.push(`  … ${total - issueLines} more (write them with --report)`);
  lines.push(`expires  ${p.expiresAt}`);
  return lines.join('\n');
}

/** Plain-text confirm result. */
export function formatConfirm(r: ConfirmResult): string {
  switch (r.status) {
    case 'applied': {
      const lines = [
        `applied  ${r.previewId}  ${r.kind}  at ${r.appliedAt}`,
        `changes  ${Object.entries(r.counts)
          .map(([k, v]) => `${k} ${v}`)
          .join(' · ')}  (${r.writes} writes)`,
      ];
      if (r.activationEmails)
        lines.push(
          `emails   activation requested ${r.activationEmails.requested}, no email ${r.activationEmails.noEmail.length} (sent by the worker from the change log)`,
        );
      return lines.join('\n');
    }
    case 'already-applied':
      return `preview ${r.previewId} was already applied at ${r.appliedAt}; nothing was written`;
    case 'changed':
      return `${r.message}\n\n${formatPreview(r.preview)}`;
  }
}

function progress(): { hooks: ImportHooks; stop: () => void } {
  if (!process.stderr.isTTY) return { hooks: {}, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { format: 'reading {value} rows', stream: process.stderr, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(0, 0);
  return { hooks: { onProgress: n => bar.update(n) }, stop: () => bar.stop() };
}

async function readInput(path: string): Promise<{ name: string; data: Uint8Array }> {
  const name = basename(path);
  const s = await stat(path).catch((err: Error) => {
    throw new ImportFileError(name, `cannot read ${path}: ${err.message}`);
  });
  if (!s.isFile()) throw new ImportFileError(name, `${path} is not a file`);
  if (s.size > DEFAULT_MAX_IMPORT_BYTES)
    throw new ImportFileError(
      name,
      `the file is ${s.size} bytes; the limit is ${DEFAULT_MAX_IMPORT_BYTES} bytes (split it into several files)`,
    );
  return { name, data: await readFile(path) };
}

interface CommonFlags {
  sheet?: string;
  headerRow?: number;
  only?: string[];
  column?: string[];
  report?: string;
  confirm?: string;
  expires?: number;
  json?: boolean;
}

async function runImport(
  withApp: WithApp,
  kind: 'parents' | 'associations',
  districtId: string,
  path: string,
  flags: CommonFlags,
  options: Record<string, unknown>,
): Promise<void> {
  const file = await readInput(path);
  await withApp(async ctx => {
    if (flags.confirm) {
      const r = await confirmImport(
        ctx,
        { districtId, previewId: flags.confirm },
        { expect: { file }, actor: cliActor() },
      );
      console.log(flags.json ? toJson(r) : formatConfirm(r));
      if (r.status === 'changed') {
        process.exitCode = EXIT_CHANGED;
        await writeReport(ctx, districtId, r.preview.previewId, flags.report);
      }
      return;
    }
    const bar = progress();
    let p: ImportPreview;
    try {
      const common = {
        districtId,
        file,
        ...(flags.expires ? { expiresInMinutes: flags.expires } : {}),
      };
      p =
        kind === 'parents'
          ? await previewParentImport(
              ctx,
              { ...common, options: parseImportOptions('parents', options) },
              bar.hooks,
            )
          : await previewAssociationImport(
              ctx,
              { ...common, options: parseImportOptions('associations', options) },
              bar.hooks,
            );
    } finally {
      bar.stop();
    }
    if (flags.json) {
      console.log(toJson(p));
      await writeReport(ctx, districtId, p.previewId, flags.report, true);
      return;
    }
    console.log(formatPreview(p));
    await writeReport(ctx, districtId, p.previewId, flags.report);
    console.log(
      `confirm  ${commandPrefix()} import ${kind} ${districtId} ${path} --confirm ${p.previewId}`,
    );
  });
}

async function writeReport(
  ctx: AppContext,
  districtId: string,
  previewId: string,
  path: string | undefined,
  quiet = false,
): Promise<void> {
  if (!path) return;
  await writeFile(path, await importReportCsv(ctx, { districtId, previewId }), 'utf8');
  // With --json, stdout holds only the JSON document.
  if (quiet) console.error(`report written to ${path}`);
  else console.log(`report   written to ${path}`);
}

/** Add the `import` command group to `program`. */
export function registerImportCommands(program: Command, withApp: WithApp): void {
  const imp = program
    .command('import')
    .description('admin imports from CSV/XLSX: preview first, then --confirm <previewId>');

  const common = (c: Command) =>
    c
      .option('--sheet <name>', 'XLSX sheet to read (default: the first)')
      .option(
        '--column <field=header>',
        'map a field to a column by header text or 1-based number (repeatable)',
        collect,
      )
      .addOption(
        new Option(
          '--header-row <n>',
          'the 1-based row of the header (default: found among the top rows)',
        ).argParser(v => Number(v)),
      )
      .option(
        '--only <column=v1,v2>',
        'keep only rows whose column has one of these values, e.g. relationshipRole=parent,guardian (repeatable; the others are left out and listed)',
        collect,
      )
      .option('--report <file.csv>', 'write the row report (every row issue) as CSV')
      .addOption(
        new Option(
          '--expires <minutes>',
          'minutes until the preview expires (default 1440)',
        ).argParser(v => Number(v)),
      )
      .option('--confirm <previewId>', 'apply this preview (made from the same file)')
      .option('--json', 'print the preview (or the confirm result) as JSON, for scripts');

  common(
    imp
      .command('parents <district> <file>')
      .description(
        'import parent accounts (First Name, Last Name, Unique ID, Email and/or Username, optional Role, School)',
      ),
  )
    .option('--role <name>', 'role for every row', 'Parent')
    .option('--role-from-file', "take each row's role from the Role column", false)
    .option('--school <school>', 'school (id or name) for every row')
    .option('--school-from-file', "take each row's school from the School column", false)
    .option(
      '--school-value <value=schoolId>',
      'value table entry: School value in the file → school id (repeatable)',
      collect,
    )
    .option('--dont-update-existing', 'leave matched accounts unchanged (report only)', false)
    .option(
      '--dont-allow-duplicates',
      'reject rows whose email belongs to another Unique ID',
      false,
    )
    .option('--send-activation-email', 'queue an activation email per new account', false)
    .action(
      async (
        districtId: string,
        path: string,
        o: CommonFlags & {
          role: string;
          roleFromFile: boolean;
          school?: string;
          schoolFromFile: boolean;
          schoolValue?: string[];
          dontUpdateExisting: boolean;
          dontAllowDuplicates: boolean;
          sendActivationEmail: boolean;
        },
      ) => {
        await runImport(withApp, 'parents', districtId, path, o, {
          ...commonOptions(o),
          role: o.role,
          roleFromFile: o.roleFromFile,
          ...(o.school ? { school: o.school } : {}),
          schoolFromFile: o.schoolFromFile,
          schoolValues: pairs(o.schoolValue, '--school-value'),
          dontUpdateExisting: o.dontUpdateExisting,
          dontAllowDuplicates: o.dontAllowDuplicates,
          sendActivationEmail: o.sendActivationEmail,
        });
      },
    );

  common(
    imp
      .command('associations <district> <file>')
      .description('import parent↔student associations (parent Unique ID, student Unique ID)'),
  )
    .option('--no-headers', 'the first row is data, not headers')
    .option(
      '--clear-existing',
      "replace the listed students' links by the file's (import, manual and access-code links; sis links stay)",
      false,
    )
    .action(
      async (
        districtId: string,
        path: string,
        o: CommonFlags & { headers: boolean; clearExisting: boolean },
      ) => {
        await runImport(withApp, 'associations', districtId, path, o, {
          ...commonOptions(o),
          hasHeaders: o.headers,
          clearExisting: o.clearExisting,
        });
      },
    );
  registerAssociationCommands(program, withApp);
}
