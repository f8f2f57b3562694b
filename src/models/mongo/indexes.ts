/**
 * Index management of the MongoDB store (issue 20 §1, docs/decisions/0010).
 *
 * Every index lives in a mongoose schema (`schema.index(...)`, with an explicit `name`); no
 * code creates an index with a raw `createIndex`. Two entry points:
 *
 * - `ensureIndexes(model)` — what every `init()` calls at start-up: creates the collection
 *   and the declared indexes that are missing, and NEVER drops one. An index the database
 *   holds but no schema declares is left alone (listed by `store migrate`). A declared index
 *   whose name or key pattern is taken by an index with another definition (unique,
 *   partial filter, collation, TTL…) cannot be created without a drop: start-up refuses with
 *   `IndexMigrationNeededError`, naming the command that rebuilds it.
 * - `planIndexes(model)` / `applyIndexPlan(model, plan, options)` — the explicit migration
 *   (`guardian-sync store migrate [--drop-unknown-indexes] [--dry-run]`, src/cli/store.ts):
 *   creates missing indexes, rebuilds the conflicting ones (drop, then create), and drops
 *   undeclared indexes only when asked.
 *
 * Why: mongoose's `syncIndexes()` drops every index the schema does not declare; at every
 * API/worker start it dropped the student lookup's indexes and rebuilt them over the whole
 * `students` collection. The comparison is mongoose's own (`Model.diffIndexes`, which
 * compares key pattern, unique, partialFilterExpression, sparse, expireAfterSeconds and
 * collation, https://mongoosejs.com/docs/api/model.html#Model.diffIndexes()).
 */
import type { Model, mongo } from 'mongoose';
import { z } from 'zod';

/** MongoDB error code of `createCollection` on an existing collection. */
const NAMESPACE_EXISTS = 48;

/** One declared index: key pattern and options (`name` always set by our schemas). */
export interface IndexSpec {
  name: string;
  key: Record<string, mongo.IndexDirection>;
  options: mongo.CreateIndexesOptions;
}

/** What a collection's indexes need to match its schema. */
export interface IndexPlan {
  collection: string;
  /** Declared and missing: created by start-up and by `store migrate`. */
  create: IndexSpec[];
  /**
   * Declared, but an index with another definition holds its name or key pattern
   * (`conflictsWith`): `store migrate` drops that one and creates the declared one; start-up
   * refuses (`IndexMigrationNeededError`).
   */
  rebuild: (IndexSpec & { conflictsWith: string })[];
  /** In the database, declared by no schema: dropped only by `--drop-unknown-indexes`. */
  unknown: DbIndex[];
  /**
   * Declared unique indexes start-up could not build because the data already holds
   * duplicates (MongoDB error 11000): start-up goes on without them, the owner reports the
   * duplicates, and the next start (or `store migrate`) tries again.
   */
  blocked?: string[];
}

/** MongoDB's duplicate-key error code (a unique index build over duplicate data). */
const DUPLICATE_KEY = 11000;

function isDuplicateKey(err: unknown): boolean {
  return (
    typeof err === 'object' && err !== null && (err as { code?: unknown }).code === DUPLICATE_KEY
  );
}

/** A declared index start-up cannot create without dropping another one. */
export class IndexMigrationNeededError extends Error {
  constructor(readonly plans: IndexPlan[]) {
    const list = plans
      .flatMap(p => p.rebuild.map(r => `${p.collection}.${r.name} (held by ${r.conflictsWith})`))
      .join(', ');
    super(
      `MongoDB indexes differ from their declaration: ${list}. Start-up never drops an index; ` +
        "run 'guardian-sync store migrate --dry-run' to see the change, then " +
        "'guardian-sync store migrate' to rebuild them (docs/operations.md)",
    );
    this.name = 'IndexMigrationNeededError';
  }
}

/** `listIndexes` entries (the fields used here; the server sends more). */
const dbIndexSchema = z.object({ name: z.string(), key: z.record(z.string(), z.unknown()) });
type DbIndex = z.infer<typeof dbIndexSchema>;

/** `Model.diffIndexes({ indexOptionsToCreate: true })` (mongoose types it as `any`). */
const diffSchema = z.object({
  toDrop: z.array(z.string()),
  toCreate: z.array(
    z.tuple([z.record(z.string(), z.unknown()), z.record(z.string(), z.unknown()).optional()]),
  ),
});

const codeOf = (err: unknown): unknown =>
  typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;

const sameKey = (a: Record<string, unknown>, b: Record<string, unknown>): boolean =>
  JSON.stringify(Object.entries(a)) === JSON.stringify(Object.entries(b));

/** Create `model`'s collection unless it exists. */
async function createCollection(model: Model<unknown>): Promise<void> {
  try {
    await model.createCollection();
  } catch (err) {
    if (codeOf(err) !== NAMESPACE_EXISTS) throw err;
  }
}

/** The indexes the database holds for `model` (none when the collection does not exist). */
async function dbIndexes(model: Model<unknown>): Promise<DbIndex[]> {
  try {
    return z.array(dbIndexSchema).parse(await model.listIndexes());
  } catch (err) {
    if ((err as { codeName?: unknown }).codeName === 'NamespaceNotFound') return [];
    throw err;
  }
}

/**
 * Compare `model`'s declared indexes with the database's (mongoose `diffIndexes`). Reads
 * only. Throws when a declared index has no `name` (every index of ours is named, so that a
 * plan can say which one it means).
 */
export async function planIndexes(model: Model<unknown>): Promise<IndexPlan> {
  const diff = diffSchema.parse(await model.diffIndexes({ indexOptionsToCreate: true }));
  const existing = await dbIndexes(model);
  const plan: IndexPlan = {
    collection: model.collection.collectionName,
    create: [],
    rebuild: [],
    unknown: [],
  };
  const claimed = new Set<string>();
  for (const [key, opts] of diff.toCreate) {
    const options = { ...(opts ?? {}) } as mongo.CreateIndexesOptions;
    const name = options.name;
    if (typeof name !== 'string')
      throw new Error(
        `index ${JSON.stringify(key)} of ${plan.collection} has no name in its schema`,
      );
    const spec: IndexSpec = { name, key: key as Record<string, mongo.IndexDirection>, options };
    const holder = existing.find(
      i => diff.toDrop.includes(i.name) && (i.name === name || sameKey(i.key, key)),
    );
    if (holder) {
      claimed.add(holder.name);
      plan.rebuild.push({ ...spec, conflictsWith: holder.name });
    } else plan.create.push(spec);
  }
  for (const i of existing)
    if (diff.toDrop.includes(i.name) && !claimed.has(i.name))
      plan.unknown.push({ name: i.name, key: i.key });
  return plan;
}

/**
 * Start-up: create `model`'s collection and its missing declared indexes; never drop.
 * Returns the plan it acted on (`unknown` indexes are left in place; a unique index the data
 * does not allow yet is listed in `blocked`). Throws `IndexMigrationNeededError` when a
 * declared index needs a rebuild, and the driver's error when any other build fails.
 */
export async function ensureIndexes(model: Model<unknown>): Promise<IndexPlan> {
  await createCollection(model);
  const plan = await planIndexes(model);
  for (const spec of plan.create) {
    try {
      await model.collection.createIndex(spec.key, spec.options);
    } catch (err) {
      if (!(spec.options.unique === true && isDuplicateKey(err))) throw err;
      (plan.blocked ??= []).push(spec.name);
    }
  }
  if (plan.rebuild.length > 0) throw new IndexMigrationNeededError([plan]);
  return plan;
}

/** Options of `applyIndexPlan` (the `store migrate` flags). */
export interface IndexMigrationOptions {
  /** Also drop indexes no schema declares (default false: they are only listed). */
  dropUnknown?: boolean;
}

/**
 * The explicit migration of one collection: create the missing indexes, rebuild the
 * conflicting ones (drop the holder, then create), and with `dropUnknown` drop the
 * undeclared ones. Returns the names dropped and created, in order.
 */
export async function applyIndexPlan(
  model: Model<unknown>,
  plan: IndexPlan,
  options: IndexMigrationOptions = {},
): Promise<{ created: string[]; dropped: string[] }> {
  await createCollection(model);
  const created: string[] = [];
  const dropped: string[] = [];
  for (const r of plan.rebuild) {
    await model.collection.dropIndex(r.conflictsWith);
    dropped.push(r.conflictsWith);
    await model.collection.createIndex(r.key, r.options);
    created.push(r.name);
  }
  for (const spec of plan.create) {
    await model.collection.createIndex(spec.key, spec.options);
    created.push(spec.name);
  }
  if (options.dropUnknown)
    for (const u of plan.unknown) {
      await model.collection.dropIndex(u.name);
      dropped.push(u.name);
    }
  return { created, dropped };
}

/** Every model registered on a connection, one per collection (for `store migrate`). */
export function modelsByCollection(models: Iterable<Model<unknown>>): Model<unknown>[] {
  const byName = new Map<string, Model<unknown>>();
  for (const m of models) byName.set(m.collection.collectionName, m);
  return [...byName.values()].sort((a, b) =>
    a.collection.collectionName < b.collection.collectionName ? -1 : 1,
  );
}
