/**
 * Plumbing shared by SQLite adapters on better-sqlite3 (a synchronous API behind the ports'
 * promise-returning methods).
 */
import type { Database, Statement } from 'better-sqlite3';

/**
 * Run a synchronous database call as a promise: its result resolves it, whatever it throws
 * rejects it. An error-like object is kept as it is, `name` and `code` included, even when it
 * fails `instanceof Error`: the native addon builds its `SqliteError`s from the first copy of
 * better-sqlite3 that loaded it, which may belong to another realm (Jest gives each test file
 * its own globals), and callers tell a busy or conflicting store by `name`/`code`. Anything
 * else thrown is wrapped in an `Error`.
 */
export function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    const errorLike = typeof err === 'object' && err !== null && 'message' in err;
    return Promise.reject(errorLike ? (err as Error) : new Error(String(err)));
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
