/**
 * The activation repository of a store, opened (and `init()`ed) once per store and cached.
 * SQLite users never load mongoose: the MongoDB implementation is imported on demand.
 */
import type { RosterStore } from '../types.js';
import { SqliteActivationRepository } from './sqlite.js';
import type { ActivationRepository } from './types.js';

export * from './types.js';

const cache = new WeakMap<RosterStore, Promise<ActivationRepository>>();

/**
 * The `ActivationRepository` sharing `store`'s connection (`store.handle()`). The first call
 * creates its table/collection and indexes; a failed open is not cached.
 */
export function activationRepository(store: RosterStore): Promise<ActivationRepository> {
  let repo = cache.get(store);
  if (!repo) {
    repo = open(store);
    cache.set(store, repo);
    repo.catch(() => cache.delete(store));
  }
  return repo;
}

async function open(store: RosterStore): Promise<ActivationRepository> {
  const h = store.handle();
  let repo: ActivationRepository;
  if (h.kind === 'sqlite') repo = new SqliteActivationRepository(h.db);
  else {
    const { MongoActivationRepository } = await import('./mongo.js');
    repo = new MongoActivationRepository(h.connection);
  }
  await repo.init();
  return repo;
}
