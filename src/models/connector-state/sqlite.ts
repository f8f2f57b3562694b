/**
 * SQLite adapter of the connector-state repository, on the roster store's better-sqlite3
 * connection (`RosterStore.handle()`). Table `connector_state`, created by `init()`; every
 * write runs in `db.transaction(...).immediate()` (read, compare run id, write).
 */
import type { Database } from 'better-sqlite3';
import {
  nextConnectorState,
  type ConnectorRunOutcome,
  type ConnectorStateRecord,
  type ConnectorStateRepository,
} from './types.js';

const DDL = `
CREATE TABLE IF NOT EXISTS connector_state (
  district_id TEXT NOT NULL,
  connector TEXT NOT NULL,
  watermark TEXT,
  runs_since_full INTEGER NOT NULL,
  last_full_at TEXT,
  last_run_id TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (district_id, connector)
)`;

interface Row {
  district_id: string;
  connector: string;
  watermark: string | null;
  runs_since_full: number;
  last_full_at: string | null;
  last_run_id: string;
  updated_at: string;
}

function fromRow(r: Row): ConnectorStateRecord {
  return {
    districtId: r.district_id,
    connector: r.connector,
    watermark: r.watermark ?? undefined,
    runsSinceFull: r.runs_since_full,
    lastFullAt: r.last_full_at ?? undefined,
    lastRunId: r.last_run_id,
    updatedAt: r.updated_at,
  };
}

export class SqliteConnectorStateRepository implements ConnectorStateRepository {
  constructor(private readonly db: Database) {}

  init(): Promise<void> {
    this.db.exec(DDL);
    return Promise.resolve();
  }

  private read(districtId: string, connector: string): ConnectorStateRecord | undefined {
    const r = this.db
      .prepare('SELECT * FROM connector_state WHERE district_id = ? AND connector = ?')
      .get(districtId, connector) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  get(districtId: string, connector: string): Promise<ConnectorStateRecord | undefined> {
    return Promise.resolve(this.read(districtId, connector));
  }

  recordRun(o: ConnectorRunOutcome): Promise<boolean> {
    const write = this.db.transaction((): boolean => {
      const prev = this.read(o.districtId, o.connector);
      if (prev?.lastRunId === o.runId) return false;
      const n = nextConnectorState(prev, o);
      this.db
        .prepare(
          `INSERT INTO connector_state (district_id, connector, watermark, runs_since_full,
             last_full_at, last_run_id, updated_at)
           VALUES (@districtId, @connector, @watermark, @runsSinceFull, @lastFullAt, @lastRunId, @updatedAt)
           ON CONFLICT (district_id, connector) DO UPDATE SET
             watermark = excluded.watermark, runs_since_full = excluded.runs_since_full,
             last_full_at = excluded.last_full_at, last_run_id = excluded.last_run_id,
             updated_at = excluded.updated_at`,
        )
        .run({ ...n, watermark: n.watermark ?? null, lastFullAt: n.lastFullAt ?? null });
      return true;
    });
    return Promise.resolve(write.immediate());
  }

  clear(districtId: string, connector: string): Promise<boolean> {
    const del = this.db.transaction(
      (): boolean =>
        this.db
          .prepare('DELETE FROM connector_state WHERE district_id = ? AND connector = ?')
          .run(districtId, connector).changes > 0,
    );
    return Promise.resolve(del.immediate());
  }
}
