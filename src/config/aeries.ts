/**
 * District-file schema of the Aeries connector (`kind: "aeries"`, sis-reference §4): the
 * Aeries REST API v5 with an `AERIES-CERT` certificate. It joins `ConnectorConfig` in
 * `./district.ts`. Secrets are never written here: `certEnv` names the variable holding
 * the certificate.
 */
import { z } from 'zod';

const EnvVarName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name (A-Z, 0-9, _)');

/**
 * Which Aeries contacts become parent accounts and links (invariant 11: explicit flags,
 * never the contact's position). Each flag is a contact-row flag of table `CON`
 * (sis-reference §4.5); a flag that is unset (`""`) does not satisfy a requirement.
 */
export const AeriesContactPolicy = z.strictObject({
  /** Require `AccessToPortal` = yes on the contact row. Default true. */
  requirePortalAccess: z.boolean().default(true),
  /** Require `EducationalRightsHolder` = yes. Default false. */
  requireEducationalRights: z.boolean().default(false),
  /** Require `LivesWithStudentIndicator` = yes. Default false. */
  requireLivesWith: z.boolean().default(false),
  /**
   * `RelationshipToStudentCode` values that never count as guardians (e.g. a district's
   * code for "emergency only"). Default none.
   */
  excludeRelationshipCodes: z.array(z.string().trim().min(1)).default([]),
});
export type AeriesContactPolicy = z.infer<typeof AeriesContactPolicy>;

/**
 * Delta pulls through `StudentDataChanges` (§4.4): ids of students whose student or contact
 * data changed since the watermark, then only those students are fetched. A delta adds and
 * updates, never removes; a full pull runs every `fullPullEveryRuns` runs (and whenever no
 * successful run left a watermark) so removals are caught.
 */
export const AeriesDeltas = z.strictObject({
  enabled: z.boolean().default(false),
  /** 1 = every run is full; 24 = a full pull, then up to 23 deltas. */
  fullPullEveryRuns: z.number().int().min(1).max(1000).default(24),
  /** The watermark is the pull's start time minus this margin (clock skew), in seconds. */
  overlapSeconds: z.number().int().min(0).max(86400).default(600),
  /** More changed students than this in a delta → the connector pulls in full instead. */
  maxChangedStudents: z.number().int().min(1).default(20000),
});
export type AeriesDeltas = z.infer<typeof AeriesDeltas>;

const HttpUrl = z.url({ protocol: /^https?$/ });

/**
 * Aeries' OneRoster 1.1 REST endpoint instead of the Aeries API (`api: "oneroster"`, read
 * through the OneRoster core). OAuth2 client credentials at `{baseUrl}/token` with at least
 * one scope; the certificate is not used (§4.3). Aeries OneRoster omits students without a
 * current class enrollment, and whether it lists guardians is unconfirmed (§4.1), so by
 * default a guardian it stops listing is not removed.
 */
export const AeriesOneRosterSettings = z.strictObject({
  clientIdEnv: EnvVarName,
  clientSecretEnv: EnvVarName,
  scope: z
    .string()
    .trim()
    .min(1)
    .default('https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly'),
  /** Default `{baseUrl}/token`. */
  tokenUrl: HttpUrl.optional(),
  /** Default `{baseUrl}/ims/oneroster/v1p1`. */
  oneRosterUrl: HttpUrl.optional(),
  /** Aeries takes `client_id`/`client_secret` as form fields. */
  credentials: z.enum(['basic', 'form']).default('form'),
  guardianLinksComplete: z.boolean().default(false),
});
export type AeriesOneRosterSettings = z.infer<typeof AeriesOneRosterSettings>;

/** `kind: "aeries"`. */
export const AeriesConnectorConfig = z
  .strictObject({
    kind: z.literal('aeries'),
    /** `rest` (default): the Aeries API v5. `oneroster`: Aeries' OneRoster endpoint (see `oneroster`). */
    api: z.enum(['rest', 'oneroster']).default('rest'),
    oneroster: AeriesOneRosterSettings.optional(),
    /**
     * The district's Aeries root, e.g. `https://district.aeries.net/aeries` (the API is under
     * `{baseUrl}/api/v5/…`).
     */
    baseUrl: z.url({ protocol: /^https?$/ }),
    /** Variable holding the 32-hex `AERIES-CERT` certificate (Security > API Security); `api: "rest"` only. */
    certEnv: EnvVarName.optional(),
    /** `DatabaseYear=YYYY-YYYY` for a non-default year database; default: the current one. */
    databaseYear: z
      .string()
      .regex(/^\d{4}-\d{4}$/, 'must look like 2025-2026')
      .optional(),
    /**
     * Students per request (`StartingRecord`/`EndingRecord` ranges, 1-based inclusive) for
     * large schools; undefined = one request per school.
     */
    studentsPerRequest: z.number().int().min(1).max(100000).optional(),
    /** Students per chunk (apply job). */
    pageSize: z.number().int().min(1).max(10000).default(500),
    /** Parallel per-student requests in a delta pull. */
    concurrency: z.number().int().min(1).max(32).default(4),
    /** Per-request timeout (ms). Aeries answers whole schools in one response: be generous. */
    timeoutMs: z.number().int().min(100).max(600000).default(120000),
    /** Retries per request for 429/5xx/network errors. */
    retries: z.number().int().min(0).max(10).default(5),
    /**
     * Code set decoding `RelationshipToStudentCode` (`GET /api/v5/codes/{table}/{field}`);
     * null = keep the raw codes.
     */
    relationshipCodeSet: z
      .strictObject({ table: z.string().min(1), field: z.string().min(1) })
      .nullable()
      .default({ table: 'CON', field: 'RC' }),
    contacts: AeriesContactPolicy.default({
      requirePortalAccess: true,
      requireEducationalRights: false,
      requireLivesWith: false,
      excludeRelationshipCodes: [],
    }),
    deltas: AeriesDeltas.default({
      enabled: false,
      fullPullEveryRuns: 24,
      overlapSeconds: 600,
      maxChangedStudents: 20000,
    }),
  })
  .superRefine((c, ctx) => {
    if (c.api === 'rest' && !c.certEnv)
      ctx.addIssue({
        code: 'custom',
        path: ['certEnv'],
        message: 'is required for the Aeries API (api "rest")',
      });
    if (c.api === 'oneroster' && !c.oneroster)
      ctx.addIssue({
        code: 'custom',
        path: ['oneroster'],
        message: 'is required for api "oneroster" (clientIdEnv, clientSecretEnv)',
      });
  });
export type AeriesConnectorConfig = z.infer<typeof AeriesConnectorConfig>;
