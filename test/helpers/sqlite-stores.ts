/**
 * Run a store contract suite on the two SQLite set-ups every adapter must pass: a database
 * file in a fresh temp folder (removed after) and `:memory:`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import type { RosterStore } from '../../src/models/types.js';
import type { StoreContract } from './store-contract.js';

/**
 * `contract('sqlite (temp file)', …)` and `contract('sqlite (:memory:)', …)`. `tmpPrefix`
 * names the temp folder; `path` is the database file inside it (default `store.db`; folders
 * in it are created by the store).
 */
export function onSqliteStores(
  contract: StoreContract,
  tmpPrefix: string,
  path: readonly string[] = ['store.db'],
): void {
  const dirs = new Map<RosterStore, string>();
  contract(
    'sqlite (temp file)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
      const store = new SqliteRosterStore(join(dir, ...path));
      await store.init();
      dirs.set(store, dir);
      return store;
    },
    async store => {
      await store.close();
      const dir = dirs.get(store);
      dirs.delete(store);
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  );
  contract(
    'sqlite (:memory:)',
    async () => {
      const store = new SqliteRosterStore(':memory:');
      await store.init();
      return store;
    },
    store => store.close(),
  );
}
