/**
 * The audit's roster reads of a store (see `./types.ts`), opened once per store and cached
 * (`repositoryCache`). SQLite users never load mongoose.
 */
import { repositoryCache } from '../repository-cache.js';
import type { AuditReads } from './types.js';

export * from './types.js';

/** The initialised `AuditReads` sharing `store`'s connection (`store.handle()`). */
export const auditReads = repositoryCache<AuditReads>({
  async sqlite(db) {
    const { SqliteAuditReads } = await import('./sqlite.js');
    return new SqliteAuditReads(db);
  },
  async mongo(connection) {
    const { MongoAuditReads } = await import('./mongo.js');
    return new MongoAuditReads(connection);
  },
});
