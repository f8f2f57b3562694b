/**
 * Connector-state repository factory: picks the adapter for the roster store's connection
 * (`RosterStore.handle()`), runs its `init()` once per store and caches it (WeakMap keyed on
 * the store; see `repositoryCache`). SQLite users never load mongoose.
 */
import { repositoryCache } from '../repository-cache.js';
import { SqliteConnectorStateRepository } from './sqlite.js';
import type { ConnectorStateRepository } from './types.js';

export * from './types.js';

/** The connector-state repository of `store`, initialised. A failed open is not cached. */
export const connectorStateRepository = repositoryCache<ConnectorStateRepository>({
  sqlite: db => new SqliteConnectorStateRepository(db),
  async mongo(connection) {
    const { MongoConnectorStateRepository } = await import('./mongo.js');
    return new MongoConnectorStateRepository(connection);
  },
});
