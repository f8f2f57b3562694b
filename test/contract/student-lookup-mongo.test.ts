/**
 * The student lookup contract on MongoDB. Runs when `MONGO_URL` is set; otherwise it is
 * skipped LOUDLY (a banner on stderr and one test that re-verifies the reason).
 */
import { randomUUID } from 'node:crypto';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { runStudentLookupContract } from './student-lookup.contract.js';

const url = process.env.MONGO_URL?.trim() ?? '';

/** `url` with its database path replaced by `db`. */
function withDatabase(base: string, db: string): string {
  const q = base.indexOf('?');
  const head = q === -1 ? base : base.slice(0, q);
  const query = q === -1 ? '' : base.slice(q);
  const schemeEnd = head.indexOf('://') + 3;
  const slash = head.indexOf('/', schemeEnd);
  return `${slash === -1 ? head : head.slice(0, slash)}/${db}${query}`;
}

if (!url) {
  const banner = '*'.repeat(78);
  console.warn(
    `\n${banner}\n*** MongoDB student lookup contract SKIPPED: MONGO_URL is not set ***\n` +
      `*** set MONGO_URL=mongodb://… to run it\n${banner}\n`,
  );
  describe('student lookup contract: mongodb', () => {
    it('is skipped only because MONGO_URL is not set', () => {
      expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
    });
  });
} else {
  runStudentLookupContract(
    'mongodb',
    async () => {
      const store = new MongoRosterStore(
        withDatabase(url, `gs_lookup_${randomUUID().slice(0, 8)}`),
        {
          serverSelectionTimeoutMS: 5000,
        },
      );
      await store.init();
      return store;
    },
    async store => {
      if (store instanceof MongoRosterStore) await store.dropDatabase();
      await store.close();
    },
  );
}
