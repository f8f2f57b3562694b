/**
 * The change-log contract on MongoDB (a replica set: the store writes every change and its
 * entries in one transaction). The server comes from `MONGO_URL`, else a testcontainers
 * replica set when a Docker engine answers; otherwise the suite is skipped LOUDLY (see
 * `test/helpers/mongo-server.ts`).
 */
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { decideMongo, describeMongo } from '../helpers/mongo-server.js';
import { runChangeLogContract } from './change-log.contract.js';

const mode = await decideMongo();

describeMongo('change-log contract: mongodb', mode, server => {
  runChangeLogContract(
    'mongodb',
    async () => {
      const store = new MongoRosterStore(server.url('gs_changes'), {
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
});
