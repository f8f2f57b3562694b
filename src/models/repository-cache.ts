/**
 * One generic "repository of a store" accessor for feature repositories (`src/models/<feature>/`):
 * picks the adapter for the roster store's connection (`RosterStore.handle()`), runs its
 * `init()` once per store and caches the promise in a WeakMap keyed on the store, so callers
 * need no change to `AppContext`.
 */
import type { Connection } from 'mongoose';
import type { Database } from 'better-sqlite3';
import type { RosterStore } from './types.js';

/** How to build a feature repository on each kind of store connection. */
export interface RepositoryOpeners<R> {
  /** Build the SQLite adapter on the store's `better-sqlite3` database. */
  sqlite(db: Database): R | Promise<R>;
  /** Build the MongoDB adapter on the store's private mongoose connection (import mongoose lazily). */
  mongo(connection: Connection): R | Promise<R>;
}

/**
 * A cached accessor `(store) => Promise<R>`: the first call for a store opens the adapter
 * matching `store.handle().kind` and awaits its `init()` (tables/collections and indexes);
 * later calls get the same promise. A failed open or `init()` is not cached: the next call
 * tries again (the rejection is passed on to the caller).
 */
export function repositoryCache<R extends { init(): Promise<void> }>(
  openers: RepositoryOpeners<R>,
): (store: RosterStore) => Promise<R> {
  const cache = new WeakMap<RosterStore, Promise<R>>();
  const open = async (store: RosterStore): Promise<R> => {
    const h = store.handle();
    const repo =
      h.kind === 'sqlite' ? await openers.sqlite(h.db) : await openers.mongo(h.connection);
    await repo.init();
    return repo;
  };
  return store => {
    let p = cache.get(store);
    if (!p) {
      p = open(store);
      cache.set(store, p);
      p.catch(() => cache.delete(store));
    }
    return p;
  };
}
