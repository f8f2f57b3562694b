/**
 * The store contract on MongoDB, plus what only MongoDB has.
 *
 * The server comes from `MONGO_URL`, else a testcontainers replica set when a Docker engine
 * answers; otherwise the suite is skipped LOUDLY (see `test/helpers/mongo-server.ts`).
 */
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { decideMongo, describeMongo, onMongoStore } from '../helpers/mongo-server.js';
import { runStoreContract } from './store.contract.js';

const mode = await decideMongo();

describeMongo('RosterStore contract: mongodb', mode, server => {
  onMongoStore(runStoreContract, server, 'gs_contract');

  describe('MongoRosterStore specifics', () => {
    it('init is idempotent (indexes already in place)', async () => {
      const store = new MongoRosterStore(server.url('gs_idx'));
      await store.init();
      await store.init();
      await store.ping();
      await store.dropDatabase();
      await store.close();
    });
  });
});
