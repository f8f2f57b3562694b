/**
 * Connector state: what a district's connector remembers between runs — the delta
 * watermark of the last successful run and how many delta runs followed the last full pull
 * (OneRoster `filter=dateLastModified>'…'` deltas, sis-reference §1.3 and §7.6).
 *
 * One record per (districtId, connector kind). Written by the `connector-state` finalize
 * hook when a run finishes; read by the pull step and handed to the connector as
 * `PullContext.deltaState`.
 */

export interface ConnectorStateRecord {
  districtId: string;
  /** Connector kind (`infinite-campus`, `skyward`, `oneroster`, …). */
  connector: string;
  /** Records modified after this ISO date-time are read by the next delta. */
  watermark?: string | undefined;
  /** Delta runs since the last full pull (0 right after a full pull). */
  runsSinceFull: number;
  /** When the last full pull's run finished (ISO). */
  lastFullAt?: string | undefined;
  /** The run that wrote this record (a re-delivered finalize of it changes nothing). */
  lastRunId: string;
  updatedAt: string;
}

/** The outcome of one finished run, as the finalize hook records it. */
export interface ConnectorRunOutcome {
  districtId: string;
  connector: string;
  runId: string;
  snapshot: 'full' | 'delta';
  /** The watermark the connector computed for this pull (undefined: keep the old one). */
  watermark?: string | undefined;
  /** ISO date-time of the run's end. */
  at: string;
}

export interface ConnectorStateRepository {
  /** Create tables/collections and indexes. Idempotent. */
  init(): Promise<void>;
  get(districtId: string, connector: string): Promise<ConnectorStateRecord | undefined>;
  /**
   * Record a finished run atomically: a full pull resets `runsSinceFull` to 0, a delta adds
   * one; the watermark moves to the run's. Recording the same `runId` twice changes nothing
   * (returns false the second time). Returns true when the record changed.
   */
  recordRun(outcome: ConnectorRunOutcome): Promise<boolean>;
  /** Forget a district's state (the next run pulls in full). Returns true when one existed. */
  clear(districtId: string, connector: string): Promise<boolean>;
}

/** The record a run outcome leads to, from the previous one (pure; shared by adapters). */
export function nextConnectorState(
  prev: ConnectorStateRecord | undefined,
  o: ConnectorRunOutcome,
): ConnectorStateRecord {
  return {
    districtId: o.districtId,
    connector: o.connector,
    watermark: o.watermark ?? prev?.watermark,
    runsSinceFull: o.snapshot === 'full' ? 0 : (prev?.runsSinceFull ?? 0) + 1,
    lastFullAt: o.snapshot === 'full' ? o.at : prev?.lastFullAt,
    lastRunId: o.runId,
    updatedAt: o.at,
  };
}
