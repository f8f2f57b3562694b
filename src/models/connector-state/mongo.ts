/**
 * MongoDB adapter of the connector-state repository, on the roster store's private mongoose
 * connection (`RosterStore.handle()`). Collection `connector_state`, created with its index
 * by `init()`.
 *
 * No transactions: `recordRun` is a compare-and-set on `lastRunId` (an update whose filter
 * excludes the run id already recorded), retried when a concurrent writer changed the
 * document between the read and the write. The unique index makes concurrent first writes
 * resolve to one document.
 */
import { Schema, type Connection, type Model } from 'mongoose';
import { ensureIndexes } from '../mongo/indexes.js';
import {
  nextConnectorState,
  type ConnectorRunOutcome,
  type ConnectorStateRecord,
  type ConnectorStateRepository,
} from './types.js';

export const CONNECTOR_STATE_COLLECTION = 'connector_state';

const requiredString = { type: String, required: true } as const;

export const connectorStateSchema = new Schema<ConnectorStateRecord>(
  {
    districtId: requiredString,
    connector: requiredString,
    watermark: String,
    runsSinceFull: { type: Number, required: true, min: 0 },
    lastFullAt: String,
    lastRunId: requiredString,
    updatedAt: requiredString,
  },
  {
    versionKey: false,
    id: false,
    strict: 'throw',
    strictQuery: 'throw',
    autoIndex: false,
    autoCreate: false,
    collection: CONNECTOR_STATE_COLLECTION,
  },
);
// get / recordRun / clear: one state per district and connector kind (upsert key).
// districtId first, so the collection can be sharded on districtId.
connectorStateSchema.index(
  { districtId: 1, connector: 1 },
  { unique: true, name: 'district_connector' },
);

const MAX_RACES = 5;
const codeOf = (err: unknown): unknown =>
  typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
const isDuplicateKey = (err: unknown): boolean => codeOf(err) === 11000 || codeOf(err) === 11001;

function clean(
  doc: (ConnectorStateRecord & { _id?: unknown }) | null,
): ConnectorStateRecord | undefined {
  if (!doc) return undefined;
  const { _id, ...rest } = doc;
  void _id;
  return rest;
}

export class MongoConnectorStateRepository implements ConnectorStateRepository {
  private readonly model: Model<ConnectorStateRecord>;

  constructor(conn: Connection) {
    this.model =
      (conn.models.ConnectorState as Model<ConnectorStateRecord> | undefined) ??
      conn.model<ConnectorStateRecord>('ConnectorState', connectorStateSchema);
  }

  /** Create the collection and its missing indexes (`ensureIndexes`: never drops). */
  async init(): Promise<void> {
    await ensureIndexes(this.model as Model<unknown>);
  }

  async get(districtId: string, connector: string): Promise<ConnectorStateRecord | undefined> {
    return clean(
      await this.model
        .findOne({ districtId, connector })
        .lean<ConnectorStateRecord & { _id?: unknown }>(),
    );
  }

  async recordRun(o: ConnectorRunOutcome): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_RACES; attempt++) {
      const prev = await this.get(o.districtId, o.connector);
      if (prev?.lastRunId === o.runId) return false;
      const n = nextConnectorState(prev, o);
      const $set: Record<string, unknown> = {};
      const $unset: Record<string, ''> = {};
      for (const [k, v] of Object.entries(n)) {
        if (v === undefined) $unset[k] = '';
        else $set[k] = v;
      }
      const update = Object.keys($unset).length ? { $set, $unset } : { $set };
      try {
        if (prev) {
          // Compare-and-set: only if nobody recorded another run since we read.
          const r = await this.model.updateOne(
            { districtId: o.districtId, connector: o.connector, lastRunId: prev.lastRunId },
            update,
          );
          if (r.modifiedCount === 1 || r.matchedCount === 1) return true;
        } else {
          await this.model.create(n);
          return true;
        }
      } catch (err) {
        if (!isDuplicateKey(err)) throw err; // a concurrent first write: read again
      }
    }
    throw new Error(
      `connector state of ${o.districtId}/${o.connector}: too many concurrent writers (run ${o.runId})`,
    );
  }

  async clear(districtId: string, connector: string): Promise<boolean> {
    return (await this.model.deleteOne({ districtId, connector })).deletedCount > 0;
  }
}
