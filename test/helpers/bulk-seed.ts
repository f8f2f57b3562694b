/**
 * Seed a district with many active students cheaply, for the store contract's large-district
 * tests (finalize scan, 2,000,000-record approvals). Writes the rows/documents straight into
 * the adapter's tables/collection in bulk (one SQLite transaction driven by a recursive CTE;
 * MongoDB `insertMany` batches), with no change-log entries: the tests measure what the store
 * does with a big district, not how it got there.
 *
 * Ids are `${prefix}${i padded to 7 digits}` for i in [0, n), so they sort in i order.
 */
import type { RosterStore } from '../../src/models/types.js';

/** The id `seedActiveStudents` gives the i-th student. */
export const seededId = (prefix: string, i: number): string =>
  `${prefix}${String(i).padStart(7, '0')}`;

/** Insert `n` active students `seededId(prefix, i)` (Unique ID `U-<id>`) into `districtId`. */
export async function seedActiveStudents(
  store: RosterStore,
  districtId: string,
  n: number,
  prefix = 'b',
): Promise<void> {
  const h = store.handle();
  if (h.kind === 'sqlite') {
    h.db
      .prepare(
        `WITH RECURSIVE k(i) AS (SELECT 0 WHERE @n > 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < @n)
        INSERT INTO students (district_id, sourced_id, unique_id, given_name, family_name,
          school_sourced_ids, grade, status)
        SELECT @districtId, @prefix || printf('%07d', i), 'U-' || @prefix || printf('%07d', i),
          'Given', 'Family', '["sch1"]', '05', 'active' FROM k`,
      )
      .run({ n, districtId, prefix });
    return;
  }
  const students = h.connection.collection('students');
  const BATCH = 20_000;
  for (let start = 0; start < n; start += BATCH) {
    const docs = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) {
      const sourcedId = seededId(prefix, i);
      docs.push({
        districtId,
        sourcedId,
        uniqueId: `U-${sourcedId}`,
        givenName: 'Given',
        familyName: 'Family',
        schoolSourcedIds: ['sch1'],
        grade: '05',
        status: 'active',
      });
    }
    await students.insertMany(docs, { ordered: false });
  }
}
