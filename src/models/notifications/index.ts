/**
 * The activation repository of a store, opened (and `init()`ed) once per store and cached
 * (see `repositoryCache`). SQLite users never load mongoose: the MongoDB implementation is
 * imported on demand.
 */
import { repositoryCache } from '../repository-cache.js';
import { SqliteActivationRepository } from './sqlite.js';
import type { ActivationRepository } from './types.js';

export * from './types.js';

/**
 * The `ActivationRepository` sharing `store`'s connection (`store.handle()`). The first call
 * creates its table/collection and indexes; a failed open is not cached.
 */
export const activationRepository = repositoryCache<ActivationRepository>({
  sqlite: db => new SqliteActivationRepository(db),
  async mongo(connection) {
    const { MongoActivationRepository } = await import('./mongo.js');
    return new MongoActivationRepository(connection);
  },
});
