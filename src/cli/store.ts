/**
 * `guardian-sync store migrate [--dry-run] [--drop-unknown-indexes]`: the one place where the
 * store's schema changes on purpose (docs/decisions/0010). Start-up (API, worker, CLI) only
 * creates what is missing and never drops an index; this command:
 *
 * - SQLite: reports the schema version (`PRAGMA user_version`) against the migrations this
 *   build knows, applies the pending ones (unless `--dry-run`), and reports whether design
 *   invariant 7 is carried by its unique index or which accounts share an email.
 * - MongoDB: compares every collection's indexes with the schemas (mongoose `diffIndexes`),
 *   prints what it would create, rebuild (a declared index whose definition changed) and what
 *   no schema declares; without `--dry-run` creates and rebuilds, and with
 *   `--drop-unknown-indexes` drops the undeclared ones.
 *
 * Output: one line per action on stdout; `--json` prints the whole report.
 * Throws `ConfigError` for an unsupported `STORE_URL` (exit 2).
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { isMongoUrl, sqlitePathOf } from '../models/index.js';
import { toJson, UsageError } from './exit.js';
import type { CollectionMigration } from '../models/mongo/migrate.js';

/** What `store migrate` found and did. */
export interface StoreMigrationReport {
  store: 'sqlite' | 'mongo';
  dryRun: boolean;
  /** SQLite: schema version before and after, and the version this build knows. */
  schema?: { before: number; after: number; latest: number };
  /** SQLite: whether invariant 7's unique index exists, else the shared emails. */
  identity?: {
    unique: boolean;
    duplicates: { districtId: string; emailNormalized: string; parentIds: string[] }[];
  };
  /** MongoDB, per collection: indexes to create, rebuild, undeclared; what was done. */
  collections?: CollectionMigration[];
}

async function migrateSqlite(path: string, dryRun: boolean): Promise<StoreMigrationReport> {
  const { MIGRATIONS, SqliteRosterStore } = await import('../models/sqlite/store.js');
  const latest = MIGRATIONS.length;
  // A mistyped path must not create a folder and an empty store: report it instead (start-up
  // creates a new store; this command only migrates one that exists).
  if (path !== ':memory:' && !existsSync(path))
    throw new ConfigError(
      `no SQLite store at ${path}`,
      [
        'check STORE_URL: this command migrates an existing store (a worker or API start creates a new one)',
      ],
      'store',
    );
  const store = new SqliteRosterStore(path);
  try {
    const before = store.schemaVersion();
    if (before > latest)
      throw new ConfigError(
        `the SQLite store ${path} is at schema version ${before}, newer than this build knows (${latest}): upgrade guardian-sync`,
        [],
        'store',
      );
    if (dryRun) return { store: 'sqlite', dryRun, schema: { before, after: before, latest } };
    await store.init();
    return {
      store: 'sqlite',
      dryRun,
      schema: { before, after: store.schemaVersion(), latest },
      identity: store.identityIndex() ?? { unique: false, duplicates: [] },
    };
  } finally {
    await store.close();
  }
}

/** Run `store migrate` against `storeUrl` (the `STORE_URL` setting). */
export async function migrateStore(
  storeUrl: string,
  opts: { dryRun: boolean; dropUnknownIndexes: boolean },
): Promise<StoreMigrationReport> {
  const url = storeUrl.trim();
  const path = sqlitePathOf(url);
  if (path !== undefined) {
    if (path === '') throw new ConfigError('store URL "sqlite:" needs a file path', [], 'store');
    if (opts.dropUnknownIndexes)
      throw new UsageError('--drop-unknown-indexes applies to MongoDB stores only');
    return migrateSqlite(path, opts.dryRun);
  }
  if (isMongoUrl(url)) {
    const { migrateMongoIndexes } = await import('../models/mongo/migrate.js');
    return {
      store: 'mongo',
      dryRun: opts.dryRun,
      collections: await migrateMongoIndexes(url, opts),
    };
  }
  throw new ConfigError(
    'unsupported store URL',
    ['STORE_URL must start with sqlite:, mongodb:// or mongodb+srv://'],
    'store',
  );
}

/** The report as lines for a person. */
export function formatMigration(r: StoreMigrationReport): string {
  const lines: string[] = [];
  const would = r.dryRun ? 'would ' : '';
  if (r.schema) {
    const { before, after, latest } = r.schema;
    if (before === latest) lines.push(`SQLite schema version ${before}: up to date`);
    else if (r.dryRun)
      lines.push(
        `SQLite schema version ${before}: ${latest - before} migration(s) pending (to ${latest}; docs/operations.md lists what each changes); nothing was changed`,
      );
    else lines.push(`SQLite schema version ${before} → ${after}`);
  }
  if (r.identity) {
    if (r.identity.unique)
      lines.push('one active SIS account per email: enforced by a unique index');
    else {
      lines.push(
        'one active SIS account per email: NOT enforced — these accounts share an email (merge or deactivate them, then run again):',
      );
      for (const d of r.identity.duplicates)
        lines.push(`  ${d.districtId} ${d.emailNormalized}: ${d.parentIds.join(', ')}`);
    }
  }
  for (const c of r.collections ?? []) {
    for (const n of c.create) lines.push(`${c.collection}: ${would}create index ${n}`);
    for (const b of c.rebuild)
      lines.push(`${c.collection}: ${would}rebuild index ${b.name} (drop ${b.conflictsWith})`);
    for (const u of c.unknown)
      lines.push(
        c.dropped.includes(u)
          ? `${c.collection}: dropped undeclared index ${u}`
          : `${c.collection}: undeclared index ${u} kept (--drop-unknown-indexes drops it)`,
      );
  }
  if (r.collections && lines.length === 0) lines.push('MongoDB indexes: up to date');
  return lines.join('\n');
}

/** Register `store migrate` on `program`; `storeUrl` reads `STORE_URL` from the environment. */
export function registerStoreCommands(program: Command, storeUrl: () => string): void {
  program
    .command('store')
    .description('store maintenance')
    .command('migrate')
    .description(
      'apply pending schema migrations and index changes (start-up never drops or rebuilds an index)',
    )
    .option('--dry-run', 'only report what would change', false)
    .option('--drop-unknown-indexes', 'MongoDB: also drop indexes no schema declares', false)
    .option('--json', 'print the report as JSON', false)
    .action(async (opts: { dryRun: boolean; dropUnknownIndexes: boolean; json: boolean }) => {
      const report = await migrateStore(storeUrl(), opts);
      console.log(opts.json ? toJson(report) : formatMigration(report));
    });
}
