/**
 * The change-log contract on MongoDB (a replica set: the store writes every change and its
 * entries in one transaction). The server comes from `MONGO_URL`, else a testcontainers
 * replica set when a Docker engine answers; otherwise the suite is skipped LOUDLY (see
 * `test/helpers/mongo-server.ts`).
 */
import { decideMongo, describeMongo, onMongoStore } from '../helpers/mongo-server.js';
import { runChangeLogContract } from './change-log.contract.js';

const mode = await decideMongo();

describeMongo('change-log contract: mongodb', mode, server => {
  onMongoStore(runChangeLogContract, server, 'gs_changes');
});
