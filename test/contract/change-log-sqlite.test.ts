/**
 * The change-log contract on SQLite: a temp file and `:memory:`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import type { RosterStore } from '../../src/models/types.js';
import { runChangeLogContract } from './change-log.contract.js';

const dirs = new Map<RosterStore, string>();

runChangeLogContract(
  'sqlite (temp file)',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gs-changes-'));
    const store = new SqliteRosterStore(join(dir, 'store.db'));
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

runChangeLogContract(
  'sqlite (:memory:)',
  async () => {
    const store = new SqliteRosterStore(':memory:');
    await store.init();
    return store;
  },
  store => store.close(),
);
