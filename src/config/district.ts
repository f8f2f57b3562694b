/**
 * District configuration files (`config/districts/*.json`), validated by zod. Secrets are
 * never written in the files: they name the environment variables that hold them.
 * Unknown keys are errors (strict objects), so a typo never silently disables a setting.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import {
  InfiniteCampusConnectorConfig,
  OneRosterConnectorConfig,
  OneRosterCsvConnectorConfig,
  SkywardConnectorConfig,
} from './oneroster.js';
import { NotificationSettings } from './notifications.js';
import { AccessCodeSettings, DEFAULT_ACCESS_CODE_SETTINGS } from './access-codes.js';
import { AeriesConnectorConfig } from './aeries.js';
import { ESchoolPlusConnectorConfig } from './eschoolplus.js';

/** A cron pattern BullMQ's job scheduler accepts (parsed with the same library, cron-parser). */
const CronPattern = z
  .string()
  .trim()
  .min(1)
  .superRefine((value, ctx) => {
    try {
      CronExpressionParser.parse(value);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid cron pattern: ${(err as Error).message}`,
      });
    }
  });

/** An IANA time zone name (e.g. `America/Chicago`), as Intl knows them. */
const TimeZone = z
  .string()
  .trim()
  .min(1)
  .refine(
    tz => {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    },
    { message: 'not a known IANA time zone (e.g. America/Chicago)' },
  );

const EnvVarName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name (A-Z, 0-9, _)');

/**
 * Which PowerSchool contacts become parent accounts and links (invariant 11: explicit
 * flags, never list order). Flags are those of `contactStudent`/`studentDetails`
 * (sis-reference §2.5).
 */
export const PowerSchoolContactPolicy = z.strictObject({
  /** Require `canAccessData` (portal data access) on the contact↔student link. Default true. */
  requireDataAccess: z.boolean().default(true),
  /** Require `custodial` on the current studentDetails row. Default false. */
  requireCustodial: z.boolean().default(false),
});

export const PowerSchoolConnectorConfig = z.strictObject({
  kind: z.literal('powerschool'),
  /** e.g. `https://district.powerschool.com` (no trailing path). */
  baseUrl: z.url({ protocol: /^https?$/ }),
  clientIdEnv: EnvVarName,
  clientSecretEnv: EnvVarName,
  /** Students per page (capped by the plugin's `student_max_page_size`). */
  pageSize: z.number().int().min(1).max(10000).default(500),
  /**
   * `auto`: use the bulk schema-table reads when the plugin grants them, else the
   * per-student contacts API. `bulk` / `per-student` force one path.
   */
  guardianReads: z.enum(['auto', 'bulk', 'per-student']).default('auto'),
  /** Parallel per-student contact requests in the fallback path. */
  contactsConcurrency: z.number().int().min(1).max(32).default(8),
  /** Per-request timeout (ms). */
  timeoutMs: z.number().int().min(100).max(600000).default(30000),
  /** Attempts per request for 429/5xx/network errors. */
  retries: z.number().int().min(0).max(10).default(5),
  contacts: PowerSchoolContactPolicy.default({ requireDataAccess: true, requireCustodial: false }),
  /** Also read course sections and their enrollments (`/ws/v1/school/{id}/section`). */
  sections: z.boolean().default(false),
});
export type PowerSchoolConnectorConfig = z.infer<typeof PowerSchoolConnectorConfig>;

export const ConnectorConfig = z.discriminatedUnion('kind', [
  PowerSchoolConnectorConfig,
  InfiniteCampusConnectorConfig,
  SkywardConnectorConfig,
  OneRosterConnectorConfig,
  OneRosterCsvConnectorConfig,
  AeriesConnectorConfig,
  ESchoolPlusConnectorConfig,
]);
export type ConnectorConfig = z.infer<typeof ConnectorConfig>;

const IsoDate = z.iso.date('must be a date YYYY-MM-DD');

/** A period in which a district does not sync on schedule, or syncs add-only. */
export const FreezeWindow = z
  .strictObject({
    from: IsoDate,
    to: IsoDate,
    mode: z.enum(['no-sync', 'add-only']),
    reason: z.string().trim().min(1).optional(),
  })
  .refine(w => w.from <= w.to, { message: '"from" must not be after "to"', path: ['to'] });
export type FreezeWindow = z.infer<typeof FreezeWindow>;

export const DistrictPolicies = z.strictObject({
  /** Percent of a district's active students or parents a run may deactivate before it is held. */
  deletionThresholdPercent: z.number().min(0).max(100).default(10),
  /** Platform role given to sync-created parent accounts. */
  parentRole: z.string().trim().min(1).default('Parent'),
  /** OneRoster `relative` users become guardians only when true (IC: not legal guardians). */
  includeRelatives: z.boolean().default(false),
  /** Add-only: runs create and update but never deactivate students, parents or links. */
  addOnly: z.boolean().default(false),
  /**
   * Dates (inclusive, `YYYY-MM-DD` in the schedule's time zone, else UTC) when scheduled syncs
   * are skipped (`no-sync`) or run add-only (`add-only`), e.g. the summer rollover.
   */
  freezeWindows: z.array(FreezeWindow).default([]),
  /**
   * A guardian with no login identifier (no email, no username/uniqueId) could never sign in:
   * `exclude` (default) creates no account for it (counted and listed as the exclusion
   * `no email or username`; its students stay unlinked and get Parent Access Codes);
   * `create` creates the account anyway (e.g. the platform signs such parents in another way).
   */
  guardiansWithoutLogin: z.enum(['exclude', 'create']).default('exclude'),
  /**
   * Students pre-registered in the SIS (PowerSchool `enroll_status` P): `exclude` (default)
   * leaves them, and so their guardians' access, out until they enrol (counted and listed as
   * `pre-registered student`); `include` syncs them as active students.
   */
  preRegisteredStudents: z.enum(['exclude', 'include']).default('exclude'),
});
export type DistrictPolicies = z.infer<typeof DistrictPolicies>;

/** Hosts where a webhook URL may use plain `http` (a receiver on the same machine, tests). */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Webhook delivery of the district's change feed (src/jobs/webhooks.ts): batches of change-log
 * entries POSTed as JSON, signed with HMAC-SHA256 of the secret in `secretEnv`.
 */
export const WebhookSettings = z.strictObject({
  /** Receiver URL: `https://…` (plain `http` only for localhost). No credentials in the URL. */
  url: z.url({ protocol: /^https?$/ }).superRefine((value, ctx) => {
    if (!URL.canParse(value)) return; // reported by z.url
    const u = new URL(value);
    if (u.username || u.password)
      ctx.addIssue({
        code: 'custom',
        message: 'must not contain credentials (the signature authenticates deliveries)',
      });
    if (u.protocol === 'http:' && !LOOPBACK_HOSTS.has(u.hostname))
      ctx.addIssue({ code: 'custom', message: 'must be https (http only for localhost)' });
  }),
  /** Environment variable holding the signing secret (at least 16 characters). */
  secretEnv: EnvVarName,
  /** Whole-request timeout per delivery (ms). */
  timeoutMs: z.number().int().min(100).max(120000).default(10000),
  /** Change-log entries per delivery. */
  batchSize: z.number().int().min(1).max(1000).default(100),
});
export type WebhookSettings = z.infer<typeof WebhookSettings>;

export const DistrictConfig = z
  .strictObject({
    /** Tenant id: lower-case slug, used in job ids and URLs. */
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a lower-case slug (a-z, 0-9, -)'),
    name: z.string().trim().min(1),
    connector: ConnectorConfig,
    /** Cron schedule for nightly syncs (BullMQ job scheduler). */
    schedule: z
      .strictObject({
        cron: CronPattern,
        timezone: TimeZone.default('UTC'),
      })
      .optional(),
    policies: DistrictPolicies.default({
      deletionThresholdPercent: 10,
      parentRole: 'Parent',
      includeRelatives: false,
      addOnly: false,
      freezeWindows: [],
      guardiansWithoutLogin: 'exclude',
      preRegisteredStudents: 'exclude',
    }),
    /** Activation emails (src/config/notifications.ts); absent: no emails for this district. */
    notifications: NotificationSettings.optional(),
    /** Parent Access Codes (src/config/access-codes.ts); default disabled. */
    accessCodes: AccessCodeSettings.default(DEFAULT_ACCESS_CODE_SETTINGS),
    /**
     * Custom parent roles of the district's platform, besides `Parent` (and the roles named by
     * `policies.parentRole` and `accessCodes.defaultRole`, which always exist). Import files
     * may name only these roles (src/imports/roles.ts).
     */
    roles: z.array(z.string().trim().min(1)).default([]),
    /** Change-feed webhook (src/jobs/webhooks.ts); absent: no deliveries for this district. */
    webhooks: WebhookSettings.optional(),
  })
  .superRefine((d, ctx) => {
    // The Skyward LMS API has no change feed (sis-reference §5: no modified-since filter on
    // /v1/students or /v1/guardians), so a delta cannot be read. Accepting the setting would
    // make every run a silent full run; refuse it, naming the district.
    const c = d.connector;
    if (c.kind === 'skyward' && c.api === 'lms' && c.deltas.enabled)
      ctx.addIssue({
        code: 'custom',
        path: ['connector', 'deltas', 'enabled'],
        message: `district "${d.id}": deltas are not available with the Skyward LMS API (api: "lms" has no change feed; every run reads every student and sends one guardian request per student, about 7 h for 500,000 students at 20 requests/s). Remove connector.deltas, or use api: "oneroster" (dateLastModified deltas)`,
      });
  });
export type DistrictConfig = z.infer<typeof DistrictConfig>;

/** Format zod issues as `file: path.to.key: message` lines. */
export function formatIssues(source: string, error: z.ZodError): string[] {
  return error.issues.map(i => {
    const path = i.path.length ? i.path.join('.') : '(root)';
    return `${source}: ${path}: ${i.message}`;
  });
}

/** Parse one district config object; throws `ConfigError` naming `source` and each key. */
export function parseDistrictConfig(source: string, raw: unknown): DistrictConfig {
  const r = DistrictConfig.safeParse(raw);
  if (!r.success)
    throw new ConfigError(`invalid district config ${source}`, formatIssues(source, r.error));
  return r.data;
}

/** Where a served district's configuration came from (recorded on each run, `SyncRun.config`). */
export interface DistrictSource {
  /** The district file (path as found under `DISTRICTS_DIR`); absent: configured in code. */
  file?: string | undefined;
  /** sha256 (hex) of the file's bytes as read (in code: of the configuration's JSON). */
  sha256: string;
  /** When this process read it (ISO). */
  loadedAt: string;
}

/** A district file on disk that cannot be used, and why (one line per problem). */
export interface DistrictFileProblem {
  file: string;
  /** The district the file is for: its `id`, else the file name without `.json`. */
  districtId: string;
  /** sha256 (hex) of the file's bytes when it was read; absent when it could not be read. */
  sha256?: string | undefined;
  problems: string[];
  /** When it was found unusable (ISO). */
  at: string;
}

/** What a districts folder holds: the usable districts, where each came from, the bad files. */
export interface DistrictFiles {
  districts: DistrictConfig[];
  sources: Map<string, DistrictSource>;
  broken: DistrictFileProblem[];
}

/** sha256 (hex) of a string or bytes. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Read every `*.json` under `dir` (example files `*.example.json` are skipped), file by file:
 * a bad file (not JSON, invalid, duplicate id) is listed in `broken` with its problems and
 * never stops the others. Throws `ConfigError` only when the folder cannot be read.
 */
export function readDistrictFiles(dir: string): DistrictFiles {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter(f => f.endsWith('.json') && !f.endsWith('.example.json'))
      .sort();
  } catch (err) {
    throw new ConfigError(`cannot read district config folder ${dir}: ${(err as Error).message}`);
  }
  const at = new Date().toISOString();
  const out: DistrictFiles = { districts: [], sources: new Map(), broken: [] };
  for (const f of files) {
    const path = join(dir, f);
    const fallbackId = basename(f, '.json');
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      out.broken.push({
        file: path,
        districtId: fallbackId,
        problems: [`${path}: cannot be read: ${(err as Error).message}`],
        at,
      });
      continue;
    }
    const sha256 = sha256Hex(bytes);
    let raw: unknown;
    try {
      raw = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      out.broken.push({
        file: path,
        districtId: fallbackId,
        sha256,
        problems: [`${path}: not valid JSON: ${(err as Error).message}`],
        at,
      });
      continue;
    }
    const rawId = (raw as { id?: unknown } | null)?.id;
    const districtId = typeof rawId === 'string' && rawId.trim() ? rawId.trim() : fallbackId;
    const r = DistrictConfig.safeParse(raw);
    if (!r.success)
      out.broken.push({
        file: path,
        districtId,
        sha256,
        problems: formatIssues(path, r.error),
        at,
      });
    else if (out.sources.has(r.data.id))
      out.broken.push({
        file: path,
        districtId,
        sha256,
        problems: [
          `${path}: id: duplicate district id "${r.data.id}" (also in ${out.sources.get(r.data.id)?.file ?? '?'})`,
        ],
        at,
      });
    else {
      out.districts.push(r.data);
      out.sources.set(r.data.id, { file: path, sha256, loadedAt: at });
    }
  }
  return out;
}

/**
 * Load every `*.json` under `dir` (example files `*.example.json` are skipped).
 * Throws `ConfigError` listing every problem in every file, and on duplicate ids.
 */
export function loadDistricts(dir: string): DistrictConfig[] {
  const r = readDistrictFiles(dir);
  if (r.broken.length)
    throw new ConfigError(
      'invalid district configuration',
      r.broken.flatMap(b => b.problems),
    );
  return r.districts;
}

/**
 * The error for a command about a district whose file cannot be used: names the file and
 * every problem (a `ConfigError`: CLI exit code 2).
 */
export function districtFileError(p: DistrictFileProblem): ConfigError {
  return new ConfigError(`district ${p.districtId}: its file ${p.file} cannot be used`, p.problems);
}

/** One line for a bad district file: the file, its first problem, how many more. */
export function districtFileWarning(p: DistrictFileProblem): string {
  const first = (p.problems[0] ?? 'unusable').replace(`${p.file}: `, '');
  const more = p.problems.length > 1 ? ` (and ${p.problems.length - 1} more problem(s))` : '';
  return `district file ${p.file} cannot be used: ${first}${more}; commands for district ${p.districtId} fail until it is fixed`;
}

/** Read a secret named by a district file; throws `ConfigError` naming the variable. */
export function secretFromEnv(env: NodeJS.ProcessEnv, district: string, name: string): string {
  const v = env[name];
  if (v === undefined || v === '') {
    throw new ConfigError(`district ${district}: environment variable ${name} is not set`);
  }
  return v;
}
