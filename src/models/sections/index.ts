/**
 * Sections repository factory: the adapter for the roster store's connection, initialised
 * once per store and cached (WeakMap keyed on the store).
 */
import type { RosterStore } from '../types.js';
import type { SectionRepository } from './types.js';

export * from './types.js';

const cache = new WeakMap<RosterStore, Promise<SectionRepository>>();

/** The sections repository of `store`, initialised. A failed `init()` is not cached. */
export function sectionRepository(store: RosterStore): Promise<SectionRepository> {
  let p = cache.get(store);
  if (!p) {
    p = open(store);
    cache.set(store, p);
    p.catch(() => cache.delete(store));
  }
  return p;
}

async function open(store: RosterStore): Promise<SectionRepository> {
  const h = store.handle();
  let repo: SectionRepository;
  if (h.kind === 'sqlite') {
    const { SqliteSectionRepository } = await import('./sqlite.js');
    repo = new SqliteSectionRepository(h.db);
  } else {
    const { MongoSectionRepository } = await import('./mongo.js');
    repo = new MongoSectionRepository(h.connection);
  }
  await repo.init();
  return repo;
}
