/**
 * The access-code and sections repository contract on MongoDB. Runs when `MONGO_URL` is set
 * (e.g. the docker-compose service); otherwise skipped LOUDLY, with one test that checks
 * the reason really holds. (No MongoDB server and no Docker engine exist in the development
 * sandbox this was written in.)
 */
import { randomUUID } from 'node:crypto';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { runAccessCodesContract } from './access-codes.contract.js';
import { mongoSkipNotice } from '../helpers/mongo-server.js';

/** `url` with its database path replaced by `db` (multi-host and +srv URLs too). */
function withDatabase(url: string, db: string): string {
  const q = url.indexOf('?');
  const head = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const schemeEnd = head.indexOf('://') + 3;
  const slash = head.indexOf('/', schemeEnd);
  const hosts = slash === -1 ? head : head.slice(0, slash);
  return `${hosts}/${db}${query}`;
}

const url = process.env.MONGO_URL?.trim() ?? '';

if (url === '') {
  mongoSkipNotice('access-code repository contract on MongoDB', 'MONGO_URL is not set');
  describe('access-code repository contract: mongodb', () => {
    it('is skipped only because MONGO_URL is unset', () => {
      expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
    });
  });
} else {
  runAccessCodesContract(
    'mongodb',
    async () => {
      const store = new MongoRosterStore(withDatabase(url, `gs_ac_${randomUUID().slice(0, 8)}`), {
        serverSelectionTimeoutMS: 5000,
      });
      await store.init();
      return store;
    },
    async store => {
      if (store instanceof MongoRosterStore) await store.dropDatabase();
      await store.close();
    },
  );
}
