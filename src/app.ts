/**
 * The application context: configuration, logger, store, Redis and queues, built once and
 * passed to job handlers, workers, the CLI and (later) the API. Owns its connections and
 * closes each of them, every step in its own try/catch, on `close()`.
 */
import { Queue, type RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  districtFileError,
  readDistrictFiles,
  sha256Hex,
  type DistrictConfig,
  type DistrictFileProblem,
  type DistrictSource,
} from './config/district.js';
import type { Env } from './config/env.js';
import { createConnector, type ConnectorOverrides } from './connectors/index.js';
import type { SisConnector } from './connectors/types.js';
import { ConfigError, describeError, UnknownDistrictError } from './errors.js';
import { RunLedger } from './jobs/ledger.js';
import { closeChunkSenders } from './jobs/chunk-sender.js';
import { openStore } from './models/index.js';
import type { RosterStore } from './models/types.js';
import { QUEUE_DEFAULT_JOB_OPTIONS, QueueName, redisOptionsFromUrl } from './workers/queues.js';

export interface AppContext {
  env: Env;
  logger: Logger;
  store: RosterStore;
  /** Shared ioredis client for the ledger and health checks (not for blocking calls). */
  redis: Redis;
  connection: RedisOptions;
  prefix: string;
  districts: Map<string, DistrictConfig>;
  /**
   * Where each served district's configuration came from (file, sha256, when it was read):
   * recorded on every run (`SyncRun.config`). Kept in step with `districts` by reloads.
   */
  districtSources: Map<string, DistrictSource>;
  /**
   * District files on disk this process cannot use, by district id: a file that is invalid
   * (CLI commands other than this district's keep working), or a changed file whose reload
   * was refused (the district keeps the configuration it had, and its runs say so).
   */
  districtProblems: Map<string, DistrictFileProblem>;
  /** Secrets the district files name (default `process.env`). */
  secrets: NodeJS.ProcessEnv;
  ledger: RunLedger;
  queues: Record<keyof typeof QueueName, Queue>;
  connectorFor(district: DistrictConfig): SisConnector;
  /**
   * The configuration served for `id`. Throws `ConfigError` naming the file and its problems
   * when the district's only file cannot be used, `UnknownDistrictError` (listing the known
   * ones) when no file defines it.
   */
  district(id: string): DistrictConfig;
  close(): Promise<void>;
}

export interface AppOptions {
  env: Env;
  logger: Logger;
  /** Districts to serve; default: loaded from `env.DISTRICTS_DIR`. */
  districts?: DistrictConfig[];
  /**
   * With the districts read from `env.DISTRICTS_DIR`: serve the good files when some are bad
   * (their districts' commands fail with the file's problems; `districtProblems` lists them)
   * instead of throwing `ConfigError` (the default: the worker and the API refuse to start).
   */
  tolerateBadDistrictFiles?: boolean;
  secrets?: NodeJS.ProcessEnv;
  /** An already open store (tests share one); default: `openStore(env.storeUrl)`. */
  store?: RosterStore;
  /** Code-level connector extras (tests: fast retry timing). */
  connectorOverrides?: ConnectorOverrides;
  /**
   * Build a district's connector in code instead of from its config (tests: a link-less
   * dev connector); returning undefined falls back to the registry.
   */
  connectorFactory?: (district: DistrictConfig) => SisConnector | undefined;
}

/**
 * Build the context. Throws `ConfigError` when Redis is not configured with
 * `maxmemory-policy noeviction` (BullMQ loses jobs under eviction).
 */
export async function createApp(opts: AppOptions): Promise<AppContext> {
  const { env, logger } = opts;
  const loadedAt = new Date().toISOString();
  const files = opts.districts ? undefined : readDistrictFiles(env.DISTRICTS_DIR);
  if (files?.broken.length && !opts.tolerateBadDistrictFiles)
    throw new ConfigError(
      'invalid district configuration',
      files.broken.flatMap(b => b.problems),
    );
  const districts = opts.districts ?? files?.districts ?? [];
  const districtSources =
    files?.sources ??
    new Map(districts.map(d => [d.id, { sha256: sha256Hex(JSON.stringify(d)), loadedAt }]));
  const districtProblems = new Map((files?.broken ?? []).map(b => [b.districtId, b]));
  const connection = redisOptionsFromUrl(env.REDIS_URL);
  const redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: 3, lazyConnect: true });
  redis.on('error', err => logger.warn({ err: describeError(err) }, 'redis connection error'));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new ConfigError(
      `REDIS_URL: cannot connect to Redis at ${connection.host ?? '?'}:${connection.port ?? '?'} (${describeError(err)})`,
      [],
      'redis',
    );
  }
  try {
    await checkEvictionPolicy(redis);
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  let store: RosterStore;
  try {
    store = opts.store ?? (await openStore(env.storeUrl));
  } catch (err) {
    redis.disconnect();
    if (err instanceof ConfigError) throw err;
    // never echo the URL itself: it may carry credentials
    throw new ConfigError(`STORE_URL: cannot open the store (${describeError(err)})`, [], 'store');
  }
  const identity = store.identityIndex();
  if (identity && !identity.unique)
    logger.warn(
      { duplicates: identity.duplicates },
      'one account per email is not enforced by the store: active SIS accounts already share an email (merge or deactivate them; `store migrate` lists them)',
    );
  const prefix = env.QUEUE_PREFIX;
  const mk = (name: QueueName) => {
    const q = new Queue(name, {
      connection,
      prefix,
      defaultJobOptions: QUEUE_DEFAULT_JOB_OPTIONS,
    });
    q.on('error', err => logger.warn({ queue: name, err: describeError(err) }, 'queue error'));
    return q;
  };
  const queues = {
    trigger: mk(QueueName.trigger),
    pull: mk(QueueName.pull),
    apply: mk(QueueName.apply),
    finalize: mk(QueueName.finalize),
    notifications: mk(QueueName.notifications),
    changes: mk(QueueName.changes),
    webhooks: mk(QueueName.webhooks),
  };
  const byId = new Map(districts.map(d => [d.id, d]));
  const secrets = opts.secrets ?? process.env;
  const ownsStore = !opts.store;
  return {
    env,
    logger,
    store,
    redis,
    connection,
    prefix,
    districts: byId,
    districtSources,
    districtProblems,
    secrets,
    ledger: new RunLedger(redis, prefix),
    queues,
    connectorFor: d =>
      opts.connectorFactory?.(d) ?? createConnector(d, secrets, logger, opts.connectorOverrides),
    district(id) {
      const d = byId.get(id);
      if (d) return d;
      const broken = districtProblems.get(id);
      if (broken) throw districtFileError(broken);
      throw new UnknownDistrictError(id, byId.keys());
    },
    async close() {
      try {
        await closeChunkSenders(redis);
      } catch (err) {
        logger.warn({ err: describeError(err) }, 'closing the chunk sender failed');
      }
      for (const q of Object.values(queues)) {
        try {
          await q.close();
        } catch (err) {
          logger.warn({ err: describeError(err) }, 'closing queue failed');
        }
      }
      try {
        await redis.quit();
      } catch (err) {
        logger.warn({ err: describeError(err) }, 'closing redis failed');
      }
      if (ownsStore) {
        try {
          await store.close();
        } catch (err) {
          logger.warn({ err: describeError(err) }, 'closing store failed');
        }
      }
    },
  };
}

async function checkEvictionPolicy(redis: Redis): Promise<void> {
  let policy: string | undefined;
  try {
    const r = await redis.call('CONFIG', 'GET', 'maxmemory-policy');
    if (Array.isArray(r) && typeof r[1] === 'string') policy = r[1];
  } catch {
    return; // managed Redis services may forbid CONFIG; they document their own policy
  }
  if (policy !== undefined && policy !== 'noeviction') {
    throw new ConfigError(
      `Redis maxmemory-policy is "${policy}"; BullMQ needs "noeviction" (set it with CONFIG SET maxmemory-policy noeviction or in redis.conf)`,
      [],
      'redis',
    );
  }
}
