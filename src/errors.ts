/**
 * Typed errors with a retry decision. Classify with `isRetryable()`, which looks at `name`
 * as well as `instanceof` (errors that crossed a process boundary lose their prototype).
 */

export abstract class GuardianSyncError extends Error {
  /** May the same operation succeed if tried again later? */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/**
 * What a `ConfigError` is about, so its advice fits (`explainError`): `district` (a district
 * file or a secret it names; the default), `environment` (a variable of the process
 * environment or `.env`), `store` (`STORE_URL`, the database), `redis` (`REDIS_URL`, the
 * Redis server), `sandbox` (`npm run sandbox`), `tokens` (`API_TOKENS` / the tokens file).
 */
export type ConfigArea = 'district' | 'environment' | 'store' | 'redis' | 'sandbox' | 'tokens';

/** Invalid configuration (environment or district file). Never retried. */
export class ConfigError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    message: string,
    /** One line per problem, each naming the variable, file or key. */
    readonly problems: string[] = [],
    /** What is misconfigured (chooses the advice `explainError` gives). */
    readonly area: ConfigArea = 'district',
  ) {
    super(problems.length ? `${message}\n  - ${problems.join('\n  - ')}` : message);
  }
}

/** How many known districts an "unknown district" message lists before "and N more". */
export const KNOWN_DISTRICTS_LISTED = 10;

/**
 * `unknown district "x" (known: a, b, … and N more)`: the districts this process serves,
 * sorted, at most `KNOWN_DISTRICTS_LISTED` of them, so a typo is easy to spot.
 */
export function unknownDistrictMessage(districtId: string, known: Iterable<string>): string {
  const all = [...known].sort();
  const shown = all.slice(0, KNOWN_DISTRICTS_LISTED).join(', ');
  const more =
    all.length > KNOWN_DISTRICTS_LISTED ? ` and ${all.length - KNOWN_DISTRICTS_LISTED} more` : '';
  return `unknown district "${districtId}" (known: ${shown || 'none'}${more})`;
}

/**
 * A district id that no district file defines. A `ConfigError` (a run of such a district
 * fails for good); the CLI reports it as "not found" (exit code 4, src/cli/exit.ts).
 */
export class UnknownDistrictError extends ConfigError {
  constructor(districtId: string, known: Iterable<string>) {
    super(unknownDistrictMessage(districtId, known));
  }
}

/**
 * An HTTP call to a SIS failed. Carries method, URL path (never query secrets) and status;
 * never headers or bodies (they may hold tokens or PII).
 */
export class SisHttpError extends GuardianSyncError {
  readonly retryable: boolean;
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number | undefined,
    detail: string,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(`${method} ${path} failed${status ? ` with HTTP ${status}` : ''}: ${detail}`, options);
    this.retryAfterMs = options?.retryAfterMs;
    // 401 is handled by re-authentication; 408/429/5xx and network errors are transient.
    this.retryable =
      status === undefined || status === 408 || status === 429 || status === 401 || status >= 500;
  }
  readonly retryAfterMs: number | undefined;
}

/**
 * The SIS answered 429 with a `Retry-After` longer than a client waits in line (a few
 * seconds): the pull is rescheduled for `retryAfterMs` from now (docs/decisions/0007), not
 * retried early. Retryable (a queue that does not know it retries with its own backoff).
 */
export class SisRateLimitError extends SisHttpError {
  constructor(
    method: string,
    path: string,
    /** The server's wait (ms from when the answer arrived), uncapped. */
    retryAfterMs: number,
    /** When the server's wait ends (ms since epoch). */
    readonly untilMs: number,
  ) {
    super(
      method,
      path,
      429,
      `rate limited; the SIS asks to wait ${Math.ceil(retryAfterMs / 1000)} s`,
      {
        retryAfterMs,
      },
    );
  }
}

/** A SIS payload did not match its documented shape (whole page unusable). */
export class SisPayloadError extends GuardianSyncError {
  readonly retryable = false;
}

/** The connector could not deliver a complete snapshot (e.g. fewer records than counted). */
export class IncompleteSnapshotError extends GuardianSyncError {
  readonly retryable = true;
}

/** A write lost a race with another writer (unique index); re-plan and try again. */
export class StoreConflictError extends GuardianSyncError {
  readonly retryable = true;
}

const RETRYABLE_NAMES = new Set(['IncompleteSnapshotError', 'StoreConflictError']);

/** True when an error (possibly deserialised) should be retried by the queue. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof GuardianSyncError) return err.retryable;
  if (err instanceof Error) {
    if (RETRYABLE_NAMES.has(err.name)) return true;
    // ApplyPayloadError (src/jobs/payloads.ts): a chunk of another version never decodes
    if (
      ['ConfigError', 'UnknownDistrictError', 'SisPayloadError', 'ApplyPayloadError'].includes(
        err.name,
      )
    )
      return false;
  }
  // Unknown errors (network resets, driver errors) are retried by default.
  return true;
}

/**
 * What an administrator reads when a run, the CLI or the API reports a failure: what went
 * wrong and where (the error's own message names the file, line, request or key), and what to
 * do about it; never a class name (those stay in debug logs, see `describeError`).
 *
 * BullMQ's `UnrecoverableError` (the workers wrap non-retryable errors in it) is unwrapped:
 * its `cause` is explained, or, for one that crossed a process boundary, its message (already
 * explained) is used. A leading `SomeError: ` left in a message is dropped.
 */
export function explainError(err: unknown, opts: ExplainOptions = {}): string {
  const context = opts.context ?? 'command';
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'UnrecoverableError') {
    if (err.cause !== undefined) return explainError(err.cause, opts);
    return stripClassNames(err.message);
  }
  const msg = stripClassNames(err.message).replace(/[.\s]+$/, '');
  // Subclasses (OneRosterApiError, SisRateLimitError) read like any failed SIS request.
  if (err instanceof SisHttpError || err.name === 'SisHttpError')
    return `the SIS request failed: ${msg}. ${httpHint((err as { status?: unknown }).status)}`;
  const again = context === 'run' ? 'start the sync again' : 'run the command again';
  switch (err.name) {
    case 'ConfigError':
      return `configuration problem: ${msg}. ${configAdvice(err as ConfigError, context)}`;
    case 'SisPayloadError':
      if (NOT_JSON.test(msg))
        // An API SIS answered with a page instead of data: no export to correct.
        return `the SIS answered with a web page or other non-JSON content instead of data: ${msg}. ${/nothing was changed/i.test(msg) ? '' : 'Nothing was deactivated. '}The connector's URL probably points to a login page, a portal or a proxy instead of the SIS API: check connector.baseUrl (and tokenUrl) in the district file against the SIS's API address, then ${again}.`;
      return `the SIS data could not be read: ${msg}. ${/nothing was changed/i.test(msg) ? '' : 'Nothing was deactivated; '}Correct the export (or ask the SIS vendor to), then ${again}.`;
    case 'IncompleteSnapshotError':
      return `the SIS delivered an incomplete roster: ${msg}. Nothing was deactivated; the next run reads it again.`;
    case 'StoreConflictError':
      return `another writer changed the same records at the same time: ${msg}. ${context === 'run' ? 'Start the sync again.' : 'Run the command again.'}`;
    default:
      // Our own errors are written for the admin; anything else is a bug or an outage.
      // Service errors with a stable code (access codes: `code` + HTTP `status`) are too.
      return err instanceof GuardianSyncError ||
        (typeof (err as { code?: unknown }).code === 'string' &&
          typeof (err as { status?: unknown }).status === 'number')
        ? msg
        : `unexpected error: ${msg} (${context === 'run' ? 'details in the worker log' : 'LOG_LEVEL=debug shows details'})`;
  }
}

/** Where an error is reported: a CLI/API command (default), or a sync run's `error`. */
export interface ExplainOptions {
  context?: 'command' | 'run';
}

/**
 * A SIS API answered 2xx with a body that is not JSON (an HTML login page, a portal, a
 * proxy's error page): the message every REST connector uses (`notJsonMessage`).
 */
const NOT_JSON = /body is not JSON/;

/**
 * The message of a `SisPayloadError` for a 2xx SIS answer that is not JSON: method, path,
 * status, content type and whether it looks like HTML (the first bytes start with `<`).
 */
export function notJsonMessage(
  method: string,
  path: string,
  status: number,
  contentType: string | undefined,
  body: string,
): string {
  const html = /^\s*</.test(body) || /html/i.test(contentType ?? '');
  return `${method} ${path}: HTTP ${status} body is not JSON (content-type ${contentType ?? 'unknown'}${html ? ', an HTML page' : ''})`;
}

/** The advice after a configuration problem: what to fix and what to do then. */
function configAdvice(err: ConfigError, context: 'command' | 'run'): string {
  const area = (err as { area?: ConfigArea }).area ?? 'district';
  switch (area) {
    case 'environment':
      return 'Fix the environment variable(s) named above (in the environment or .env), then run the command again.';
    case 'store':
      return 'Check STORE_URL and the store named above, then run the command again.';
    case 'redis':
      return 'Fix REDIS_URL or the Redis server as said above, then run the command again.';
    case 'sandbox':
      return 'Fix what is named above, then start the sandbox again.';
    case 'tokens':
      return 'Fix API_TOKENS or the tokens file named above, then run the command again.';
    default:
      return context === 'run'
        ? 'Fix the district file or the environment variable it names (a running worker re-reads district files and .env by itself), then start the sync again.'
        : 'Fix the district file or the environment variable it names, then run the command again.';
  }
}

function httpHint(status: unknown): string {
  if (status === 401 || status === 403)
    return 'Check the connector credentials (client id/secret, token) and their permissions in the SIS.';
  if (status === 404) return 'Check the connector base URL and the endpoint settings.';
  if (status === 429)
    return 'The SIS is limiting requests; nothing was deactivated and the next run tries again.';
  return 'The SIS or the network was unavailable after retries; nothing was deactivated and the next run tries again.';
}

function stripClassNames(message: string): string {
  let m = message;
  while (/^[A-Z][A-Za-z]*Error: /.test(m)) m = m.replace(/^[A-Z][A-Za-z]*Error: /, '');
  return m;
}

/** Short, PII-free description of an unknown thrown value (class name included: for logs). */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** An operation does not fit a run's current state (approve a run that is not held…). */
export class RunStateError extends GuardianSyncError {
  readonly retryable = false;
}
