/**
 * Store factory: pick the `RosterStore` adapter from a store URL and initialise it.
 *
 * - `sqlite:<path>` (also `sqlite://<path>`, `sqlite:///<absolute path>`, `sqlite::memory:`)
 *   → `SqliteRosterStore`.
 * - `mongodb://…` / `mongodb+srv://…` → `MongoRosterStore`, imported dynamically so SQLite
 *   users never load mongoose.
 */
import { ConfigError } from '../errors.js';
import type { RosterStore } from './types.js';

export type { RosterStore } from './types.js';

/** Path of a `sqlite:` store URL; undefined when `url` is not one. */
export function sqlitePathOf(url: string): string | undefined {
  if (!url.startsWith('sqlite:')) return undefined;
  let path = url.slice('sqlite:'.length);
  if (path.startsWith('//')) path = path.slice(2); // sqlite://rel/path, sqlite:///abs/path
  return path;
}

/** True for MongoDB connection strings. */
export function isMongoUrl(url: string): boolean {
  return url.startsWith('mongodb://') || url.startsWith('mongodb+srv://');
}

/**
 * Open the store named by `storeUrl` and run its `init()` (migrations / indexes).
 * Throws `ConfigError` for an unknown scheme or an empty SQLite path.
 */
export async function openStore(storeUrl: string): Promise<RosterStore> {
  const url = storeUrl.trim();
  const path = sqlitePathOf(url);
  let store: RosterStore;
  if (path !== undefined) {
    if (path === '') throw new ConfigError('store URL "sqlite:" needs a file path', [], 'store');
    const { SqliteRosterStore } = await import('./sqlite/store.js');
    store = new SqliteRosterStore(path);
  } else if (isMongoUrl(url)) {
    const { MongoRosterStore } = await import('./mongo/store.js');
    store = new MongoRosterStore(url);
  } else {
    // Never echo the URL: it may carry credentials.
    throw new ConfigError(
      'unsupported store URL',
      ['STORE_URL must start with sqlite:, mongodb:// or mongodb+srv://'],
      'store',
    );
  }
  try {
    await store.init();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
