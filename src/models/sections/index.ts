/**
 * Sections repository factory: the adapter for the roster store's connection, initialised
 * once per store and cached (WeakMap keyed on the store; see `repositoryCache`).
 */
import { repositoryCache } from '../repository-cache.js';
import type { SectionRepository } from './types.js';

export * from './types.js';

/** The sections repository of `store`, initialised. A failed `init()` is not cached. */
export const sectionRepository = repositoryCache<SectionRepository>({
  async sqlite(db) {
    const { SqliteSectionRepository } = await import('./sqlite.js');
    return new SqliteSectionRepository(db);
  },
  async mongo(connection) {
    const { MongoSectionRepository } = await import('./mongo.js');
    return new MongoSectionRepository(connection);
  },
});
