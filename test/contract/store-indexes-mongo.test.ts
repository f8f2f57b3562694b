/**
 * Index contract on MongoDB, and the `explain()` of every hot query (`HOT_QUERIES`): each
 * query's adapter call runs with command monitoring on, and every read/write command it sent
 * is explained — an index scan, no COLLSCAN, and no SORT stage for the sorted ones. Runs when
 * `MONGO_URL` is set (a replica set); otherwise skipped LOUDLY (one SKIPPED line on stderr and
 * one test that re-checks why), like the other MongoDB suites.
 */
import { randomUUID } from 'node:crypto';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import type { RosterStore } from '../../src/models/types.js';
import { mongoSkipNotice, withDatabase } from '../helpers/mongo-server.js';
import { HOT_QUERIES, runStoreIndexContract, seedHotData } from './store-indexes.contract.js';

const url = process.env.MONGO_URL?.trim() ?? '';
/** Commands that read or write documents (the ones `explain` accepts). */
const EXPLAINABLE = new Set([
  'find',
  'aggregate',
  'count',
  'distinct',
  'update',
  'delete',
  'findAndModify',
]);
/** Session/transaction fields the driver adds, which `explain` refuses. */
const DRIVER_FIELDS = [
  'lsid',
  'txnNumber',
  'autocommit',
  'startTransaction',
  '$clusterTime',
  '$db',
  'readConcern',
  'writeConcern',
  '$readPreference',
];

interface Monitored {
  store: MongoRosterStore;
  commands: { name: string; command: Record<string, unknown> }[];
  ops(): number;
}

async function openMonitored(prefix: string): Promise<Monitored> {
  const store = new MongoRosterStore(withDatabase(url, `${prefix}_${randomUUID().slice(0, 8)}`), {
    serverSelectionTimeoutMS: 5000,
    monitorCommands: true,
  });
  await store.init();
  const h = store.handle();
  if (h.kind !== 'mongo') throw new Error('expected mongo');
  const commands: Monitored['commands'] = [];
  h.connection.getClient().on('commandStarted', e => {
    commands.push({ name: e.commandName, command: { ...(e.command as Record<string, unknown>) } });
  });
  return { store, commands, ops: () => commands.length };
}

if (!url) {
  mongoSkipNotice('MongoDB store index contract and hot-query explain()', 'MONGO_URL is not set');
  describe('store index contract and hot-query explain(): mongodb', () => {
    it('is skipped only because MONGO_URL is not set', () => {
      expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
    });
  });
} else {
  runStoreIndexContract(
    'mongodb',
    () => openMonitored('gs_idx'),
    async (store: RosterStore) => {
      if (store instanceof MongoRosterStore) await store.dropDatabase();
      await store.close();
    },
  );

  describe('hot queries on MongoDB: explain()', () => {
    let t: Monitored;
    beforeAll(async () => {
      t = await openMonitored('gs_hot');
      await seedHotData(t.store);
      for (const q of HOT_QUERIES) await q.run(t.store);
    }, 60_000);
    afterAll(async () => {
      await t.store.dropDatabase();
      await t.store.close();
    });

    it.each(HOT_QUERIES.map(q => [q.name, q] as const))('%s', async (_name, q) => {
      t.commands.length = 0;
      await q.run(t.store);
      const sent = t.commands.filter(c => EXPLAINABLE.has(c.name));
      expect(sent.length).toBeGreaterThan(0);
      const db = t.store.handle().kind === 'mongo' ? t.store.handle() : undefined;
      if (db?.kind !== 'mongo' || !db.connection.db) throw new Error('not connected');
      for (const c of sent) {
        const command = { ...c.command };
        for (const f of DRIVER_FIELDS) delete command[f];
        const plan = JSON.stringify(
          await db.connection.db.command({ explain: command, verbosity: 'queryPlanner' }),
        );
        expect({ command: c.name, collscan: plan.includes('COLLSCAN') }).toEqual({
          command: c.name,
          collscan: false,
        });
        expect(plan).toMatch(/IXSCAN|IDHACK|EXPRESS_/);
        if (q.sorted) expect(plan).not.toMatch(/"stage":"SORT"/);
      }
    });
  });
}
