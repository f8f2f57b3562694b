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
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
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
  SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional(),
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
   * Job lock of the pipeline workers (pull, apply, finalize, change consumers), in ms; renewed
   * every half of it while a job runs. A job whose worker died (kill -9, lost host) is taken up
   * again once its lock has expired and a stalled check saw it. Unset: 120 s for pull and
   * finalize, BullMQ's 30 s for the others. Short values suit tests; in production a value
   * shorter than the longest event-loop stall makes live jobs look dead.
   */
  WORKER_LOCK_MS: z.coerce.number().int().min(1000).max(3_600_000).optional(),
  /** How often the pipeline workers look for stalled jobs (ms). Unset: BullMQ's 30 s. */
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(500).max(3_600_000).optional(),
  /** Admin/status API (`guardian-sync api`): listen address and port. */
  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** API bearer tokens as JSON `[{name, sha256, role, districts?}]` (src/config/api-tokens.ts). */
  API_TOKENS: ApiTokensJson.optional(),
  /** File with the same list, used when `API_TOKENS` is not set. */
  API_TOKENS_FILE: z.string().min(1).default('config/api-tokens.json'),
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
      r.error.issues.map(i => `${i.path.join('.')}: ${i.message}`),
    );
  }
  const storeUrl = r.data.STORE_URL ?? r.data.MONGO_URL ?? 'sqlite:./data/guardian-sync.db';
  return Object.freeze({ ...r.data, storeUrl });
}
