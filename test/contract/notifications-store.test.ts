/**
 * The activation repository contract on SQLite (always) and MongoDB (when `MONGO_URL` is set;
 * otherwise a one-line SKIPPED notice and a test that re-checks why).
 */
import { randomUUID } from 'node:crypto';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { runActivationRepositoryContract } from './notifications.contract.js';
import { mongoSkipNotice } from '../helpers/mongo-server.js';

runActivationRepositoryContract(
  'sqlite (:memory:)',
  async () => {
    const store = new SqliteRosterStore(':memory:');
    await store.init();
    return store;
  },
  store => store.close(),
);

const mongoUrl = process.env.MONGO_URL?.trim();

/** `url` with its database path replaced by `db`. */
function withDatabase(url: string, db: string): string {
  const q = url.indexOf('?');
  const head = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const schemeEnd = head.indexOf('://') + 3;
  const slash = head.indexOf('/', schemeEnd);
  return `${slash === -1 ? head : head.slice(0, slash)}/${db}${query}`;
}

if (mongoUrl) {
  runActivationRepositoryContract(
    'mongodb',
    async () => {
      const store = new MongoRosterStore(
        withDatabase(mongoUrl, `gs_notify_${randomUUID().slice(0, 8)}`),
        { serverSelectionTimeoutMS: 5000 },
      );
      await store.init();
      return store;
    },
    async store => {
      if (store instanceof MongoRosterStore) await store.dropDatabase();
      await store.close();
    },
  );
} else {
  mongoSkipNotice('ActivationRepository contract on MongoDB', 'MONGO_URL is not set');
  describe('ActivationRepository contract: mongodb', () => {
    it('is skipped only because MONGO_URL is not set', () => {
      expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
    });
  });
}
