/** The imports repository contract on SQLite (a temp file and `:memory:`). */
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { runImportRepositoryContract } from './imports-repository.contract.js';
import { onSqliteStores } from '../helpers/sqlite-stores.js';

onSqliteStores(runImportRepositoryContract, 'gs-imports-');

describe('SqliteImportRepository specifics', () => {
  it('resolves student Unique IDs through its index (no scan of the district)', async () => {
    const store = new SqliteRosterStore(':memory:');
    await store.init();
    const { importRepository } = await import('../../src/models/imports/index.js');
    await importRepository(store);
    const h = store.handle();
    if (h.kind !== 'sqlite') throw new Error('expected sqlite');
    const plan = h.db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT s.sourced_id FROM json_each(?) AS k CROSS JOIN students AS s
         ON s.district_id = ? AND s.unique_id = k.value`,
      )
      .all('["S1"]', 'd') as { detail: string }[];
    expect(plan.map(p => p.detail).join('\n')).toMatch(
      /USING (COVERING )?INDEX imports_students_unique_id/,
    );
    await store.close();
  });
});
