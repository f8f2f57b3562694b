/** The student lookup contract on SQLite, and its index use. */
import { studentLookup } from '../../src/models/imports/student-lookup.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { runStudentLookupContract } from './student-lookup.contract.js';

runStudentLookupContract(
  'sqlite (:memory:)',
  async () => {
    const store = new SqliteRosterStore(':memory:');
    await store.init();
    return store;
  },
  store => store.close(),
);

describe('SqliteStudentLookup specifics', () => {
  it('searches by a range scan of student_name_keys, not a scan of the district', async () => {
    const store = new SqliteRosterStore(':memory:');
    await store.init();
    await studentLookup({ store });
    const h = store.handle();
    if (h.kind !== 'sqlite') throw new Error('expected sqlite');
    const plan = h.db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT s.* FROM (
           SELECT DISTINCT sourced_id FROM student_name_keys
           WHERE district_id = ? AND name_key >= ? AND name_key < ?) AS k
         CROSS JOIN students AS s ON s.district_id = ? AND s.sourced_id = k.sourced_id
         WHERE s.status = 'active'`,
      )
      .all('d', 'jo', 'jo\u{10ffff}', 'd') as { detail: string }[];
    const text = plan.map(p => p.detail).join('\n');
    expect(text).toMatch(
      /SEARCH student_name_keys USING PRIMARY KEY \(district_id=\? AND name_key>\? AND name_key<\?\)/,
    );
    expect(text).not.toMatch(/SCAN s\b|SCAN students/);
    await store.close();
  });
});
