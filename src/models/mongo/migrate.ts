/**
 * The MongoDB half of `guardian-sync store migrate` (src/cli/store.ts, docs/decisions/0010):
 * compare every collection's indexes with the schemas of every feature repository and, unless
 * `dryRun`, create the missing ones, rebuild the changed ones and (with `dropUnknownIndexes`)
 * drop the undeclared ones. Start-up never does the last two. Throws the driver's error when
 * the server is unreachable or a build fails (e.g. a unique index over duplicate data).
 */
import type { Model } from 'mongoose';

/** What `store migrate` found and did on one collection (index names). */
export interface CollectionMigration {
  collection: string;
  create: string[];
  rebuild: { name: string; conflictsWith: string }[];
  unknown: string[];
  created: string[];
  dropped: string[];
}

export async function migrateMongoIndexes(
  url: string,
  opts: { dryRun: boolean; dropUnknownIndexes: boolean },
): Promise<CollectionMigration[]> {
  const { dryRun } = opts;
  const dropUnknown = opts.dropUnknownIndexes;
  const { MongoRosterStore } = await import('./store.js');
  const { planIndexes, applyIndexPlan, modelsByCollection } = await import('./indexes.js');
  const store = new MongoRosterStore(url);
  try {
    await store.connect();
    const handle = store.handle();
    if (handle.kind !== 'mongo') throw new Error('expected a MongoDB store');
    const conn = handle.connection;
    // Every feature repository registers its models on the shared connection.
    const mods = await Promise.all([
      import('../access-codes/mongo.js'),
      import('../changes/mongo.js'),
      import('../connector-state/mongo.js'),
      import('../imports/mongo.js'),
      import('../notifications/mongo.js'),
      import('../sections/mongo.js'),
    ]);
    new mods[0].MongoAccessCodeRepository(conn);
    new mods[1].MongoChangeLogRepository(conn);
    new mods[2].MongoConnectorStateRepository(conn);
    new mods[3].MongoImportRepository(conn);
    new mods[4].MongoActivationRepository(conn);
    new mods[5].MongoSectionRepository(conn);
    const collections: CollectionMigration[] = [];
    for (const model of modelsByCollection(Object.values(conn.models) as Model<unknown>[])) {
      const plan = await planIndexes(model);
      const done = dryRun
        ? { created: [], dropped: [] }
        : await applyIndexPlan(model, plan, { dropUnknown });
      collections.push({
        collection: plan.collection,
        create: plan.create.map(c => c.name),
        rebuild: plan.rebuild.map(r => ({ name: r.name, conflictsWith: r.conflictsWith })),
        unknown: plan.unknown.map(u => u.name),
        ...done,
      });
    }
    return collections;
  } finally {
    await store.close();
  }
}
