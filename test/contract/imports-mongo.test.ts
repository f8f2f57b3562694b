/**
 * The imports repository contract on MongoDB. Runs when `MONGO_URL` is set; otherwise it is
 * skipped LOUDLY (one line on stderr and one test that re-verifies the reason).
 */
import { randomUUID } from 'node:crypto';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { runImportRepositoryContract } from './imports-repository.contract.js';
import { mongoSkipNotice } from '../helpers/mongo-server.js';

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
  mongoSkipNotice('MongoDB imports repository contract', 'MONGO_URL is not set');
  describe('imports repository contract: mongodb', () => {
    it('is skipped only because MONGO_URL is not set', () => {
      expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
    });
  });
} else {
  runImportRepositoryContract(
    'mongodb',
    async () => {
      const store = new MongoRosterStore(
        withDatabase(url, `gs_imports_${randomUUID().slice(0, 8)}`),
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
