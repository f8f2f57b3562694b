/**
 * Access-code repository factory: picks the adapter for the roster store's connection
 * (`RosterStore.handle()`), runs its `init()` once per store and caches it (WeakMap keyed on
 * the store; see `repositoryCache`), so callers need no change to `AppContext`.
 */
import { repositoryCache } from '../repository-cache.js';
import type { AccessCodeRepository } from './types.js';

export * from './types.js';

/**
 * The access-code repository of `store`, initialised (tables/collections and indexes).
 * A failed `init()` is not cached: the next call tries again.
 */
export const accessCodeRepository = repositoryCache<AccessCodeRepository>({
  async sqlite(db) {
    const { SqliteAccessCodeRepository } = await import('./sqlite.js');
    return new SqliteAccessCodeRepository(db);
  },
  async mongo(connection) {
    const { MongoAccessCodeRepository } = await import('./mongo.js');
    return new MongoAccessCodeRepository(connection);
  },
});
