/**
 * The change-log repository of a store, opened once per store and cached (see
 * `repositoryCache`). SQLite users never load mongoose.
 */
import { repositoryCache } from '../repository-cache.js';
import { SqliteChangeLogRepository } from './sqlite.js';
import type { ChangeLogRepository } from './types.js';

export * from './types.js';

/** The `ChangeLogRepository` sharing `store`'s connection (`store.handle()`). */
export const changeLogRepository = repositoryCache<ChangeLogRepository>({
  sqlite: db => new SqliteChangeLogRepository(db),
  async mongo(connection) {
    const { MongoChangeLogRepository } = await import('./mongo.js');
    return new MongoChangeLogRepository(connection);
  },
});
