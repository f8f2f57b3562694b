/**
 * Access-code repository factory: picks the adapter for the roster store's connection
 * (`RosterStore.handle()`), runs its `init()` once per store and caches it (WeakMap keyed on
 * the store), so callers need no change to `AppContext`.
 */
import type { RosterStore } from '../types.js';
import type { AccessCodeRepository } from './types.js';

export * from './types.js';

const cache = new WeakMap<RosterStore, Promise<AccessCodeRepository>>();

/**
 * The access-code repository of `store`, initialised (tables/collections and indexes).
 * A failed `init()` is not cached: the next call tries again.
 */
export function accessCodeRepository(store: RosterStore): Promise<AccessCodeRepository> {
  let p = cache.get(store);
  if (!p) {
    p = open(store);
    cache.set(store, p);
    p.catch(() => cache.delete(store));
  }
  return p;
}

async function open(store: RosterStore): Promise<AccessCodeRepository> {
  const h = store.handle();
  let repo: AccessCodeRepository;
  if (h.kind === 'sqlite') {
    const { SqliteAccessCodeRepository } = await import('./sqlite.js');
    repo = new SqliteAccessCodeRepository(h.db);
  } else {
    const { MongoAccessCodeRepository } = await import('./mongo.js');
    repo = new MongoAccessCodeRepository(h.connection);
  }
  await repo.init();
  return repo;
}
