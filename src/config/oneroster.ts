/**
 * District-file schemas of the OneRoster-family connectors: the generic OneRoster REST
 * connector (`oneroster`), the Infinite Campus preset (`infinite-campus`), Skyward (SMS 2.0
 * LMS API or its OneRoster API, `skyward`) and OneRoster CSV files (`oneroster-csv`, from a
 * folder, a zip or SFTP). They join `ConnectorConfig` in `./district.ts`.
 *
 * Sources: ../shared/sis-reference.md §1 (OneRoster), §3 (Infinite Campus), §5 (Skyward).
 * Secrets are never written here: the files name the environment variables that hold them.
 */
import { z } from 'zod';

const EnvVarName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name (A-Z, 0-9, _)');

const HttpUrl = z.url({ protocol: /^https?$/ });

/** OneRoster specification version of a REST connection or CSV export. */
export const OneRosterVersion = z.enum(['1.1', '1.2']);
export type OneRosterVersion = z.infer<typeof OneRosterVersion>;

/**
 * Which field of a OneRoster student user is the district-wide `uniqueId` admins use in
 * import files: `identifier` (the local student number, default), `username`,
 * `userMasterIdentifier` (1.2; Infinite Campus puts the state id there) or `sourcedId`.
 */
export const OneRosterStudentUniqueId = z.enum([
  'identifier',
  'username',
  'userMasterIdentifier',
  'sourcedId',
]);
export type OneRosterStudentUniqueId = z.infer<typeof OneRosterStudentUniqueId>;

/**
 * Delta pulls (`filter=dateLastModified>'…'`, §1.3). A delta adds and updates, never
 * removes; a full pull runs every `fullPullEveryRuns` runs (and always when no successful
 * run left a watermark) so removals are caught.
 */
export const OneRosterDeltas = z.strictObject({
  enabled: z.boolean().default(false),
  /** 1 = every run is full; 7 = a full pull, then up to 6 deltas. */
  fullPullEveryRuns: z.number().int().min(1).max(1000).default(7),
  /** The watermark is the pull's start time minus this margin (clock skew), in seconds. */
  overlapSeconds: z.number().int().min(0).max(86400).default(600),
  /** More changed users than this in a delta → the connector pulls in full instead. */
  maxChangedUsers: z.number().int().min(1).default(50000),
});
export type OneRosterDeltas = z.infer<typeof OneRosterDeltas>;

const DELTAS_DEFAULT: OneRosterDeltas = {
  enabled: false,
  fullPullEveryRuns: 7,
  overlapSeconds: 600,
  maxChangedUsers: 50000,
};

/** Settings every OneRoster REST connection shares (generic, IC, Skyward OneRoster). */
const restCommon = {
  /** Records per page (`limit`); the spec default is 100, IC clients use 1000. */
  pageSize: z.number().int().min(1).max(10000).default(500),
  /** Per-request timeout (ms). */
  timeoutMs: z.number().int().min(100).max(600000).default(30000),
  /** Retries per request for 429/5xx/network errors. */
  retries: z.number().int().min(0).max(10).default(5),
  /** Requests per second this district may send (undefined = no limit). */
  maxRequestsPerSecond: z.number().positive().max(1000).optional(),
  studentUniqueId: OneRosterStudentUniqueId.default('identifier'),
  /** Read classes and enrollments into sections/enrollments (keeps an index per student). */
  enrollments: z.boolean().default(false),
  deltas: OneRosterDeltas.default(DELTAS_DEFAULT),
};

/**
 * How a generic OneRoster REST connection authenticates (§1.2): OAuth2 client credentials
 * (`tokenUrl`; client id/secret as a Basic header or as form fields; optional scopes) or
 * OAuth 1.0a request signing (1.1; no token call; the consumer key/secret are the client
 * id/secret variables).
 */
export const OneRosterAuth = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('oauth2'),
    tokenUrl: HttpUrl,
    clientIdEnv: EnvVarName,
    clientSecretEnv: EnvVarName,
    /** `basic`: HTTP Basic header; `form`: `client_id`/`client_secret` form fields. */
    credentials: z.enum(['basic', 'form']).default('basic'),
    /** Space-separated scopes, e.g. `https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly`. */
    scope: z.string().trim().min(1).optional(),
  }),
  z.strictObject({
    type: z.literal('oauth1'),
    clientIdEnv: EnvVarName,
    clientSecretEnv: EnvVarName,
    signatureMethod: z.enum(['HMAC-SHA1', 'HMAC-SHA256']).default('HMAC-SHA256'),
  }),
]);
export type OneRosterAuth = z.infer<typeof OneRosterAuth>;

/** `kind: "oneroster"`: any vendor's OneRoster 1.1/1.2 REST API. */
export const OneRosterConnectorConfig = z.strictObject({
  kind: z.literal('oneroster'),
  version: OneRosterVersion,
  /** Up to and including `/ims/oneroster/v1p1` or `/ims/oneroster/rostering/v1p2`. */
  baseUrl: HttpUrl,
  auth: OneRosterAuth,
  /** False when the vendor lists only some guardians (then absence removes nothing). */
  guardianLinksComplete: z.boolean().default(true),
  ...restCommon,
});
export type OneRosterConnectorConfig = z.infer<typeof OneRosterConnectorConfig>;

/**
 * `kind: "infinite-campus"`: a OneRoster connection of Infinite Campus (§3). The token URL
 * and the base URL are both shown on the connection's "Information to Share" screen; they
 * are configured separately, never derived from each other.
 */
export const InfiniteCampusConnectorConfig = z
  .strictObject({
    kind: z.literal('infinite-campus'),
    version: OneRosterVersion.default('1.2'),
    /** e.g. `https://x.infinitecampus.org/campus/api/oneroster/v1p2/{appName}/ims/oneroster/rostering/v1p2`. */
    baseUrl: HttpUrl,
    /** e.g. `https://x.infinitecampus.org/campus/oauth2/token?appName={appName}` (OAuth2 only). */
    tokenUrl: HttpUrl.optional(),
    /** Default: `oauth2` with 1.2; with 1.1, `oauth2` when a `tokenUrl` is set, else `oauth1`. */
    oauth: z.enum(['oauth2', 'oauth1']).optional(),
    clientIdEnv: EnvVarName,
    clientSecretEnv: EnvVarName,
    /** IC clients post the client id/secret as form fields (§3.3). */
    credentials: z.enum(['basic', 'form']).default('form'),
    /** OAuth 1.0a (1.1) signature method. */
    signatureMethod: z.enum(['HMAC-SHA1', 'HMAC-SHA256']).default('HMAC-SHA256'),
    scope: z.string().trim().min(1).optional(),
    /**
     * `native`: the feed's sourcedIds (1.1 `s123`, 1.2 GUIDs). `legacy`: IC's person ids,
     * the same in 1.1 and 1.2 (1.1 ids without the role letter; 1.2 `metadata` legacy id),
     * so a district can move from 1.1 to 1.2 without new ids (§3.5).
     */
    sourcedIds: z.enum(['native', 'legacy']).default('native'),
    /**
     * IC lists a guardian only when they have Campus Parent (portal) access (§3.4): by default
     * a guardian the feed stops listing is not removed. Set true to assert the district's
     * connection lists every guardian.
     */
    guardianLinksComplete: z.boolean().default(false),
    ...restCommon,
  })
  .superRefine((c, ctx) => {
    const oauth = c.oauth ?? (c.version === '1.2' || c.tokenUrl ? 'oauth2' : 'oauth1');
    if (oauth === 'oauth2' && !c.tokenUrl)
      ctx.addIssue({
        code: 'custom',
        path: ['tokenUrl'],
        message: 'is required for OAuth2 (copy it from the connection’s Information to Share)',
      });
    if (oauth === 'oauth1' && c.version === '1.2')
      ctx.addIssue({ code: 'custom', path: ['oauth'], message: 'OneRoster 1.2 uses OAuth2' });
  });
export type InfiniteCampusConnectorConfig = z.infer<typeof InfiniteCampusConnectorConfig>;

/**
 * `kind: "skyward"`: Skyward SMS 2.0 (§5). `api: "lms"` reads the LMS API (password-grant
 * token with Basic client auth; `usernameEnv`/`passwordEnv` hold the API key and secret);
 * `api: "oneroster"` reads Skyward's OneRoster API through the OneRoster core (OAuth2 when a
 * `tokenUrl` is set, else OAuth 1.0a signing with the client id/secret as key/secret).
 */
export const SkywardConnectorConfig = z
  .strictObject({
    kind: z.literal('skyward'),
    api: z.enum(['lms', 'oneroster']).default('lms'),
    /** LMS: the API root (e.g. `https://skywardinstall.com/API`); OneRoster: its base URL. */
    baseUrl: HttpUrl,
    clientIdEnv: EnvVarName,
    clientSecretEnv: EnvVarName,
    /** LMS API key (password-grant `username`). Required for `api: "lms"`. */
    usernameEnv: EnvVarName.optional(),
    /** LMS API secret (password-grant `password`). Required for `api: "lms"`. */
    passwordEnv: EnvVarName.optional(),
    /** OneRoster only. */
    version: OneRosterVersion.default('1.1'),
    tokenUrl: HttpUrl.optional(),
    credentials: z.enum(['basic', 'form']).default('basic'),
    /** OneRoster without `tokenUrl`: OAuth 1.0a signature method. */
    signatureMethod: z.enum(['HMAC-SHA1', 'HMAC-SHA256']).default('HMAC-SHA256'),
    /** LMS: students per page (`paging.limit`). */
    pageSize: z.number().int().min(1).max(10000).default(500),
    /** LMS: parallel per-student guardian requests. */
    guardianConcurrency: z.number().int().min(1).max(32).default(4),
    /** Requests per second this district may send (LMS default 20; undefined = no limit for OneRoster). */
    maxRequestsPerSecond: z.number().positive().max(1000).optional(),
    timeoutMs: z.number().int().min(100).max(600000).default(30000),
    retries: z.number().int().min(0).max(10).default(5),
    studentUniqueId: OneRosterStudentUniqueId.default('identifier'),
    /** OneRoster: classes/enrollments; LMS: `/v1/students/{NameId}/enrollments` per student. */
    enrollments: z.boolean().default(false),
    /**
     * OneRoster only. `enabled: true` with `api: "lms"` is refused by `DistrictConfig` (the
     * LMS API has no change feed, §5).
     */
    deltas: OneRosterDeltas.default(DELTAS_DEFAULT),
    /** The LMS API lists every guardian of a current student (§5.3). */
    guardianLinksComplete: z.boolean().default(true),
  })
  .superRefine((c, ctx) => {
    if (c.api === 'lms') {
      if (!c.usernameEnv)
        ctx.addIssue({
          code: 'custom',
          path: ['usernameEnv'],
          message: 'is required for the LMS API',
        });
      if (!c.passwordEnv)
        ctx.addIssue({
          code: 'custom',
          path: ['passwordEnv'],
          message: 'is required for the LMS API',
        });
      if (c.studentUniqueId === 'username')
        ctx.addIssue({
          code: 'custom',
          path: ['studentUniqueId'],
          message:
            'the LMS API has no username; use identifier (DisplayId), userMasterIdentifier (StateId) or sourcedId (NameId)',
        });
    }
  });
export type SkywardConnectorConfig = z.infer<typeof SkywardConnectorConfig>;

/** Where OneRoster CSV files come from. */
export const OneRosterCsvSource = z.discriminatedUnion('type', [
  /** A folder holding `manifest.csv`, `users.csv`, … */
  z.strictObject({ type: z.literal('folder'), path: z.string().trim().min(1) }),
  /** A zip file, or a folder of zips (the newest `*.zip` by modification time is read). */
  z.strictObject({ type: z.literal('zip'), path: z.string().trim().min(1) }),
  /** A zip on an SFTP server (a file, or a folder: the newest `*.zip` there). */
  z.strictObject({
    type: z.literal('sftp'),
    host: z.string().trim().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    usernameEnv: EnvVarName,
    passwordEnv: EnvVarName.optional(),
    /** Variable holding a PEM private key (instead of, or with, a password). */
    privateKeyEnv: EnvVarName.optional(),
    /**
     * SHA-256 fingerprint of the server's host key (base64 as `ssh-keygen -l` prints it,
     * with or without `SHA256:`). Strongly recommended; without it any host key is accepted.
     */
    hostKeySha256: z.string().trim().min(1).optional(),
    remotePath: z.string().trim().min(1),
    timeoutMs: z.number().int().min(100).max(600000).default(30000),
  }),
]);
export type OneRosterCsvSource = z.infer<typeof OneRosterCsvSource>;

/**
 * `kind: "oneroster-csv"`: a OneRoster 1.1/1.2 CSV export (§1.5). Bulk or delta per its
 * `manifest.csv`; a delta adds and updates, never removes.
 */
export const OneRosterCsvConnectorConfig = z
  .strictObject({
    kind: z.literal('oneroster-csv'),
    source: OneRosterCsvSource,
    /** Students per chunk. */
    pageSize: z.number().int().min(1).max(10000).default(500),
    studentUniqueId: OneRosterStudentUniqueId.default('identifier'),
    enrollments: z.boolean().default(false),
    guardianLinksComplete: z.boolean().default(true),
  })
  .superRefine((c, ctx) => {
    if (c.source.type === 'sftp' && !c.source.passwordEnv && !c.source.privateKeyEnv)
      ctx.addIssue({
        code: 'custom',
        path: ['source', 'passwordEnv'],
        message: 'SFTP needs passwordEnv or privateKeyEnv',
      });
  });
export type OneRosterCsvConnectorConfig = z.infer<typeof OneRosterCsvConnectorConfig>;
