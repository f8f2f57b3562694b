/**
 * The `SisConnector` port. One implementation per SIS product under
 * `src/connectors/<sis>/`, registered in `src/connectors/index.ts`.
 */
import type { Logger } from 'pino';
import type { RosterChunk, School } from '../mapping/canonical.js';
import type { Reject } from '../models/types.js';

export type ConnectorKind =
  | 'powerschool'
  | 'infinite-campus'
  | 'aeries'
  | 'skyward'
  | 'eschoolplus'
  | 'oneroster'
  | 'oneroster-csv';

/** What a connector can deliver (design.md vocabulary). */
export interface ConnectorCapabilities {
  /** The SIS gives student↔guardian relationships (else: access codes, issue 5). */
  guardianLinks: boolean;
  /** Sections and enrollments are part of the snapshot. */
  enrollments: boolean;
  /** The SIS can return only what changed since a point in time. */
  delta: boolean;
  /**
   * The SIS lists every guardian of a student (so a guardian it no longer lists is gone).
   * False when the feed omits some guardians for configuration reasons (Infinite Campus
   * lists only guardians with portal access): then no link or parent account is removed
   * because of absence (invariant 9). Undefined means true.
   */
  guardianLinksComplete?: boolean;
}

/**
 * What the pipeline remembers between runs for a connector that can pull deltas: the
 * watermark of the last successful run (ISO date-time; records modified after it are read)
 * and how many delta runs followed the last full pull.
 */
export interface DeltaState {
  watermark?: string | undefined;
  runsSinceFull: number;
}

export interface PullContext {
  logger: Logger;
  /** Aborted on shutdown; connectors stop between requests. */
  signal: AbortSignal;
  /** A record that failed validation or policy. The pull goes on. */
  reject(r: Reject): void;
  /**
   * The district's saved delta state (connectors with `capabilities.delta`); undefined when
   * there is none yet, or the pipeline keeps none: the connector then pulls in full.
   */
  deltaState?: DeltaState | undefined;
}

/** Figures a connector reports after a pull (for the run summary and benchmarks). */
export interface PullStats {
  httpRequests: number;
  /** Requests by HTTP status (`"200"`, `"429"`, `"network"`). */
  httpByStatus: Record<string, number>;
  /** Students the SIS said it has (count endpoint), when it says. */
  expectedStudents?: number | undefined;
  /**
   * `delta` when the last pull read only what changed: it adds and updates, and the run must
   * not deactivate anything for absence. Undefined means `full`.
   */
  snapshot?: 'full' | 'delta' | undefined;
  /** The delta watermark to save when the run succeeds (connectors with `capabilities.delta`). */
  watermark?: string | undefined;
}

export interface SisConnector {
  readonly kind: ConnectorKind;
  readonly capabilities: ConnectorCapabilities;
  /** Authenticate and make one cheap call. Throws `SisHttpError`/`ConfigError`. */
  checkConnection(): Promise<void>;
  readSchools(ctx: PullContext): Promise<School[]>;
  /**
   * Stream the roster as self-contained chunks (students + their guardians + those
   * relationships). The stream ends normally only when the snapshot is complete; any
   * failure (after the client's own retries) is thrown, and the run never deactivates.
   * Throws `IncompleteSnapshotError` when fewer unique students arrived than counted.
   */
  readRoster(ctx: PullContext): AsyncIterable<RosterChunk>;
  stats(): PullStats;
}
