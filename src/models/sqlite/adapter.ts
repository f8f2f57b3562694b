/**
 * Plumbing shared by SQLite adapters on better-sqlite3 (a synchronous API behind the ports'
 * promise-returning methods).
 */
import type { Database, Statement } from 'better-sqlite3';

/**
 * Run a synchronous database call as a promise: its result resolves it, whatever it throws
 * rejects it (a thrown non-`Error` is wrapped in one).
 */
export function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** The prepared statements of one connection: each SQL text is prepared once, on first use. */
export class StatementCache {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  /** The prepared statement of `sql`. */
  get(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }
}
