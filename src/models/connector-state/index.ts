/**
 * Connector-state repository factory: picks the adapter for the roster store's connection
 * (`RosterStore.handle()`), runs its `init()` once per store and caches it (WeakMap keyed on
 * the store). SQLite users never load mongoose.
 */
import type { RosterStore } from '../types.js';
import { SqliteConnectorStateRepository } from './sqlite.js';
import type { ConnectorStateRepository } from './types.js';

export * from './types.js';

const cache = new WeakMap<RosterStore, Promise<ConnectorStateRepository>>();

/** The connector-state repository of `store`, initialised. A failed open is not cached. */
export function connectorStateRepository(store: RosterStore): Promise<ConnectorStateRepository> {
  let p = cache.get(store);
  if (!p) {
    p = open(store);
    cache.set(store, p);
    p.catch(() => cache.delete(store));
  }
  return p;
}

async function open(store: RosterStore): Promise<ConnectorStateRepository> {
  const h = store.handle();
  let repo: ConnectorStateRepository;
  if (h.kind === 'sqlite') repo = new SqliteConnectorStateRepository(h.db);
  else {
    const { MongoConnectorStateRepository } = await import('./mongo.js');
    repo = new MongoConnectorStateRepository(h.connection);
  }
  await repo.init();
  return repo;
}
