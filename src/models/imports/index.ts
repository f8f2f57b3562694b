/**
 * The imports repository for a store: `importRepository(store)` picks the SQLite or MongoDB
 * implementation from `store.handle()`, runs its `init()` once, and caches it per store
 * (a `WeakMap`, so closing and dropping a store drops its repository too).
 */
import type { RosterStore } from '../types.js';
import { SqliteImportRepository } from './sqlite.js';
import type { ImportRepository } from './types.js';

export type * from './types.js';
export { normalizeUsername, PART_SIZE } from './types.js';

const cache = new WeakMap<RosterStore, Promise<ImportRepository>>();

/**
 * The initialised imports repository of `store`. The store itself must be initialised.
 * A failed `init()` is not cached (the next call tries again).
 */
export function importRepository(store: RosterStore): Promise<ImportRepository> {
  let repo = cache.get(store);
  if (!repo) {
    repo = (async () => {
      const handle = store.handle();
      let r: ImportRepository;
      if (handle.kind === 'sqlite') r = new SqliteImportRepository(handle.db);
      else {
        const { MongoImportRepository } = await import('./mongo.js');
        r = new MongoImportRepository(handle.connection);
      }
      await r.init();
      return r;
    })();
    cache.set(store, repo);
    repo.catch(() => cache.delete(store));
  }
  return repo;
}

/** Shorthand for `importRepository(ctx.store)`. */
export function imports(ctx: { store: RosterStore }): Promise<ImportRepository> {
  return importRepository(ctx.store);
}
