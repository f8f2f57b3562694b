/**
 * Process environment, loaded with dotenv and validated once with zod. Every invalid
 * variable is reported at once, each by name (`ConfigError.problems`).
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { ApiTokensJson } from './api-tokens.js';

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const EnvSchema = z.object({
  /** Redis for BullMQ, e.g. `redis://127.0.0.1:6379`. */
  REDIS_URL: z
    .url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })
    .default('redis://127.0.0.1:6379'),
  /**
   * Store: `sqlite:./data/guardian-sync.db` (default) or `mongodb://…`. `MONGO_URL`, when
   * set and `STORE_URL` is not, selects MongoDB.
   */
  STORE_URL: z
    .string()
    .regex(/^(sqlite:.+|mongodb(\+srv)?:\/\/.+)$/, 'must start with sqlite: or mongodb://')
    .optional(),
  MONGO_URL: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\/.+$/, 'must start with mongodb://')
    .optional(),
  /**
   * SMTP server for activation emails, e.g. `smtp://user:pass@mail.example.org:587` or
   * `smtps://…:465`; nodemailer URL options may follow as a query (`?pool=true`). Unset: the
   * notifications worker does not start and emails wait in the queue.
   */
  SMTP_URL: z.url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' }).optional(),
  /**
   * Activation emails sent in parallel per worker process (with `?pool=true` the pool's
   * `maxConnections` still caps SMTP connections).
   */
  NOTIFY_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  LOG_LEVEL: LogLevel.default('info'),
  /**
   * Log lines on stderr: `json` (one object per line), `pretty` (human-readable), `auto`
   * (pretty when stderr is a terminal, else JSON). src/logger.ts.
   */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Folder of district files. */
  DISTRICTS_DIR: z.string().min(1).default('config/districts'),
  /** Prefix of all BullMQ keys, so several deployments can share one Redis. */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]+$/, 'letters, digits, :, _ and - only')
    .default('gsync'),
  /** Apply jobs processed in parallel per worker process. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * Pulls (one per syncing district) processed in parallel per worker process. A pull holds
   * its slot for most of its run (it waits for its own apply, `SYNC_CHUNKS_AHEAD`), so
   * districts beyond this number queue for a slot, smallest first (docs/decisions/0016).
   */
  PULL_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * Longest time (ms) a queued pull or a released chunk keeps its size-based priority
   * (smaller districts first, docs/decisions/0016). Past it, the next pull or chunk to
   * finish moves it ahead of every prioritized job, so a large district is never starved by
   * a stream of small ones. 0 = first come, first served. Default 30 000.
   */
  SYNC_PRIORITY_MAX_WAIT_MS: z.coerce.number().int().min(0).max(86_400_000).default(30_000),
  /**
   * Job lock of the pipeline workers (pull, apply, finalize, change consumers), in ms; renewed
   * every half of it while a job runs. A job whose worker died (kill -9, lost host) is taken up
   * again once its lock has expired and a stalled check saw it. Unset: 30 s (BullMQ's
   * default; `PIPELINE_LOCK_MS` for pull and finalize). Short values suit tests; in production a value
   * shorter than the longest event-loop stall makes live jobs look dead.
   */
  WORKER_LOCK_MS: z.coerce.number().int().min(1000).max(3_600_000).optional(),
  /**
   * How often the workers look for stalled jobs (ms). Unset: 10 s for pull and finalize
   * (`PIPELINE_STALLED_INTERVAL_MS`), BullMQ's 30 s for the others.
   */
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(500).max(3_600_000).optional(),
  /**
   * Chunks a district's pull may queue ahead of that district's apply (docs/decisions/0011):
   * bounds the Redis memory a large pull holds and lets other districts' chunks through.
   * Unset: 4.
   */
  SYNC_CHUNKS_AHEAD: z.coerce.number().int().min(1).max(10_000).optional(),
  /**
   * Where a pull adds its chunks to the apply queue (docs/decisions/0021): `thread` (a worker
   * thread of the pull's process, off the thread that reads the SIS) or `inline`.
   */
  SYNC_CHUNK_SENDER: z.enum(['thread', 'inline']).default('thread'),
  /**
   * Longest wait (seconds) a pull honours when a SIS answers 429 with a long `Retry-After`:
   * the pull is rescheduled for the server's time, at most this far ahead (docs/operations.md,
   * "SIS rate limits"). Default 3600 (one hour).
   */
  SIS_RETRY_AFTER_MAX_SECONDS: z.coerce.number().int().min(1).max(86400).default(3600),
  /**
   * How often each worker process looks for active runs whose jobs are gone or stuck (ms;
   * src/jobs/run-reconciler.ts, docs/operations.md "Run reconciler"). It also runs at start.
   */
  RUN_RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /**
   * An active run whose progress (pull job state, chunks applied) has not changed for this
   * long is failed by the reconciler (ms). 0 disables the check. Default 2 h.
   */
  RUN_STALE_AFTER_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 3_600_000)
    .default(7_200_000),
  /**
   * How long a pipeline job keeps retrying (with backoff) while the store is locked by
   * another process (SQLITE_BUSY), counted from the first busy error, before the run fails
   * (ms). Default 10 min.
   */
  STORE_BUSY_LIMIT_MS: z.coerce
    .number()
    .int()
    .min(0)
    .max(24 * 3_600_000)
    .default(600_000),
  /**
   * Import previews run in worker threads off the API's event loop (src/imports/preview-runner.ts):
   * at most this many at once per API process; others wait.
   */
  IMPORT_PREVIEW_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(1),
  /** Heap limit of one preview thread (MB); a preview needing more is refused (422). */
  IMPORT_PREVIEW_MAX_HEAP_MB: z.coerce.number().int().min(64).max(16384).default(2048),
  /** Most data rows one import file may have (refused with 422 while it is read). */
  IMPORT_PREVIEW_MAX_ROWS: z.coerce.number().int().min(1).max(10_000_000).default(500_000),
  /**
   * Failed Parent Access Code redemptions allowed per 15 minutes per API token, per district
   * and in all (docs/operations.md "Redemption failure budgets"); the per-client (10) and
   * per-code (5) budgets are fixed.
   */
  REDEEM_TOKEN_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(200),
  REDEEM_DISTRICT_FAILURES: z.coerce.number().int().min(1).max(1_000_000).default(200),
  REDEEM_GLOBAL_FAILURES: z.coerce.number().int().min(1).max(10_000_000).default(1000),
  /** Admin/status API (`guardian-sync api`): listen address and port. */
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** API bearer tokens as JSON `[{name, sha256, role, districts?}]` (src/config/api-tokens.ts). */
  API_TOKENS: ApiTokensJson.optional(),
  /** File with the same list, used when `API_TOKENS` is not set. */
  API_TOKENS_FILE: z.string().min(1).default('config/api-tokens.json'),
  /**
   * Key that signs the admin console's session cookies and CSRF tokens (at least 32
   * characters; `openssl rand -base64 48`). Unset: a random key per API process, so sessions
   * end when the API restarts and do not carry between several API processes
   * (docs/decisions/0009-admin-console.md).
   */
  CONSOLE_SESSION_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** How long a console session lasts after login (hours; it is not extended by use). */
  CONSOLE_SESSION_HOURS: z.coerce.number().min(0.01).max(720).default(8),
  /**
   * `Secure` flag of the console's cookies: `auto` sets it when the request came over https
   * (as fastify sees it), `always` sets it always (behind a TLS-terminating proxy).
   */
  CONSOLE_SECURE_COOKIE: z.enum(['auto', 'always']).default('auto'),
  /** Largest accepted request body in bytes (routes that take files may allow more). */
  API_BODY_LIMIT: z.coerce.number().int().min(1024).max(1073741824).default(1048576),
  /**
   * Change-log entries older than this many days are pruned daily (src/jobs/webhooks.ts),
   * except the entry explaining each active link and account and entries a consumer has not
   * handled yet. Default 400: more than one school year.
   */
  CHANGE_LOG_RETENTION_DAYS: z.coerce.number().int().min(1).max(36500).default(400),
});
export type Env = z.infer<typeof EnvSchema> & { storeUrl: string };

/**
 * Validate `env` (default `process.env`). Empty strings count as unset.
 * Throws `ConfigError` listing every bad variable by name.
 */
export function parseEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;
  const r = EnvSchema.safeParse(cleaned);
  if (!r.success) {
    throw new ConfigError(
      'invalid environment',
      r.error.issues.map(i => envIssueLine(i, cleaned)),
      'environment',
    );
  }
  const storeUrl = r.data.STORE_URL ?? r.data.MONGO_URL ?? 'sqlite:./data/guardian-sync.db';
  return Object.freeze({ ...r.data, storeUrl });
}

/** Variables whose value is a secret: never echoed, only its length. */
const SECRET_NAME = /SECRET|TOKEN|PASSWORD|PASS\b|KEY/;

/**
 * A variable's value as an error message may show it: secrets (`*SECRET*`, `*TOKEN*`…) as
 * `(N characters, hidden)`, a URL's password as `***`, anything longer than 80 characters cut.
 */
export function maskEnvValue(name: string, value: string): string {
  if (SECRET_NAME.test(name)) return `(${value.length} characters, hidden)`;
  const masked = value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
  const cut = masked.length > 80 ? `${masked.slice(0, 77)}…` : masked;
  return JSON.stringify(cut);
}

interface SchemaDef {
  type?: string;
  innerType?: unknown;
  defaultValue?: unknown;
}

/**
 * What a variable of `EnvSchema` accepts, in words (`allowed: a whole number from 1 to 64;
 * default 2`, `allowed: one of a, b`), undefined when the schema says no more than its own
 * message.
 */
export function allowedEnvValues(name: string): string | undefined {
  let s = (EnvSchema.shape as Record<string, unknown>)[name] as
    { def?: SchemaDef; [k: string]: unknown } | undefined;
  let dflt: unknown;
  while (s?.def && (s.def.type === 'default' || s.def.type === 'optional')) {
    if (s.def.type === 'default') dflt = s.def.defaultValue;
    s = s.def.innerType as typeof s;
  }
  if (!s?.def) return undefined;
  const parts: string[] = [];
  if (s.def.type === 'number') {
    const kind = s.isInt === true ? 'a whole number' : 'a number';
    const min = typeof s.minValue === 'number' ? s.minValue : undefined;
    const max = typeof s.maxValue === 'number' ? s.maxValue : undefined;
    const fmt = (n: number) => n.toLocaleString('en-US');
    if (min !== undefined && max !== undefined)
      parts.push(`${kind} from ${fmt(min)} to ${fmt(max)}`);
    else parts.push(kind);
  } else if (s.def.type === 'enum' && Array.isArray(s.options)) {
    parts.push(`one of ${(s.options as string[]).join(', ')}`);
  }
  const range = parts.length ? `allowed: ${parts.join('; ')}` : '';
  const withDefault =
    dflt === undefined
      ? range
      : [
          range,
          `default ${typeof dflt === 'object' ? JSON.stringify(dflt) : String(dflt as string | number | boolean)}`,
        ]
          .filter(Boolean)
          .join('; ');
  return withDefault || undefined;
}

/**
 * One line per invalid variable: its name, what is wrong, the value given (masked,
 * `maskEnvValue`) and what is allowed, e.g. `WORKER_CONCURRENCY: out of range, got "500"
 * (allowed: a whole number from 1 to 64; default 2)`.
 */
function envIssueLine(issue: z.core.$ZodIssue, given: Record<string, string>): string {
  const name = issue.path.join('.');
  const value = given[name];
  const shown = value === undefined ? '' : `, got ${maskEnvValue(name, value)}`;
  const allowed = allowedEnvValues(name);
  const what =
    issue.code === 'invalid_type'
      ? issue.expected === 'int'
        ? 'not a whole number'
        : 'not a number'
      : issue.code === 'too_big' || issue.code === 'too_small'
        ? issue.origin === 'number'
          ? 'out of range'
          : issue.message
        : issue.code === 'invalid_value'
          ? 'not one of the allowed values'
          : issue.code === 'invalid_format' && issue.format === 'safeint'
            ? 'not a whole number'
            : issue.message;
  return `${name}: ${what}${shown}${allowed ? ` (${allowed})` : ''}`;
}
