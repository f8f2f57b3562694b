/**
 * Zod schemas of OneRoster 1.1/1.2 payloads (REST JSON; CSV rows are converted in
 * `./csv.ts` to the same records), sis-reference §1. Every record schema outputs one
 * version-neutral shape (`OrUserRecord`, `OrOrgRecord`, `OrClassRecord`, `OrEnrollmentRecord`)
 * so the mapping (`src/mapping/oneroster.ts`) does not care where a record came from.
 *
 * Liberal in what it accepts (§1.4, §7.3; several points are [unconfirmed] per vendor):
 * - ids may be numbers or strings; GUIDRefs may be `{sourcedId,…}` objects or bare ids;
 * - a list holding one element may be a bare object; `null` lists are empty;
 * - `enabledUser` may be a boolean or `"true"`/`"TRUE"`/`"false"`/`"1"`/`"Y"`…;
 * - blank strings mean "absent" (OneRoster sends `""` for unset fields);
 * - status may be blank (bulk CSV: active), `active`, `tobedeleted` or 1.0-era `inactive`;
 * - 1.1 `role` + `orgs[]` and 1.2 `roles[]` + `primaryOrg` both give roles and orgs;
 * - Infinite Campus `metadata` legacy ids under several spellings and nestings.
 * Unknown keys are stripped, never an error.
 */
import { z } from 'zod';
import { toBool, toId } from '../scalars.js';

// ---------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------

/** An id as number or non-blank string, output as a trimmed string. */
export const OrId = z.unknown().transform(toId);

/** A boolean sent as `true`, `"true"`, `"TRUE"`, `"1"`, `"Y"`, `1` (and the false forms). */
export const OrBool = z.unknown().transform(toBool);

/** Optional boolean; `null`/`""` mean unset. */
export const OrOptBool = z
  .union([z.literal(''), OrBool])
  .nullish()
  .transform(v => (v === '' || v === null || v === undefined ? undefined : v));

/** Optional text; `null` and blank mean unset; numbers become strings; output trimmed. */
export const OrOptString = z
  .union([z.string(), z.number()])
  .nullish()
  .transform(v => {
    if (v === null || v === undefined) return undefined;
    const s = String(v).trim();
    return s === '' ? undefined : s;
  });

/** A list that may be an array, a single element, null or missing → array. */
export function orList<T extends z.ZodType>(item: T) {
  return z
    .union([z.array(item), item])
    .nullish()
    .transform((v): z.output<T>[] => {
      if (v === null || v === undefined) return [];
      return Array.isArray(v) ? v : [v];
    });
}

/** GUIDRef `{"href","sourcedId","type"}` (§1.4) or a bare id → the sourcedId. */
export const OrGuidRef = z.union([
  OrId,
  z
    .object({ sourcedId: OrId, href: z.string().nullish(), type: z.string().nullish() })
    .transform(r => r.sourcedId),
]);

/** OneRoster record status. Blank/absent = `active` (bulk CSV); 1.0 `inactive` = removal. */
export type OrStatus = 'active' | 'tobedeleted';
export const OrStatusField = z
  .string()
  .nullish()
  .transform((v, ctx): OrStatus => {
    const k = (v ?? '').trim().toLowerCase();
    if (k === '' || k === 'active') return 'active';
    if (k === 'tobedeleted' || k === 'inactive' || k === 'deleted') return 'tobedeleted';
    ctx.addIssue({
      code: 'custom',
      message: 'must be active or tobedeleted',
    });
    return z.NEVER;
  });

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/** A user in version-neutral form. Role names are lower-cased; ids are strings. */
export interface OrUserRecord {
  sourcedId: string;
  status: OrStatus;
  dateLastModified?: string | undefined;
  enabledUser?: boolean | undefined;
  /** 1.1 `role`, or every 1.2 `roles[].role`, lower-cased, de-duplicated. */
  roles: string[];
  /** 1.1 `orgs[]`, or 1.2 `primaryOrg` then `roles[].org`, de-duplicated, in that order. */
  orgSourcedIds: string[];
  username?: string | undefined;
  identifier?: string | undefined;
  userMasterIdentifier?: string | undefined;
  givenName?: string | undefined;
  familyName?: string | undefined;
  middleName?: string | undefined;
  email?: string | undefined;
  sms?: string | undefined;
  phone?: string | undefined;
  /** The other side of the student↔guardian link (§1.4 "Agents semantics"). */
  agentSourcedIds: string[];
  grades: string[];
  userIds: { type: string; identifier: string }[];
  /** Infinite Campus legacy (1.1-era) person id from `metadata` (§3.5), when present. */
  legacyId?: string | undefined;
}

const LEGACY_KEYS = new Set([
  'ic.legacysourceid',
  'ic.legacysourcedid',
  'legacysourceid',
  'legacysourcedid',
  'ic.legacyid',
  'legacyid',
]);

/**
 * The Infinite Campus legacy id inside `metadata` (§3.5: key spelling from the KB, nesting
 * [unconfirmed]): `{"ic.legacysourceId":"77120"}`, `{"ic":{"legacysourceId":"77120"}}` or
 * `{"legacySourcedId":77120}`, any case. Undefined when absent.
 */
export function legacyIdFromMetadata(metadata: unknown): string | undefined {
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  for (const [k, v] of Object.entries(metadata as Record<string, unknown>)) {
    const key = k.toLowerCase();
    if (LEGACY_KEYS.has(key) && (typeof v === 'string' || typeof v === 'number')) {
      const s = String(v).trim();
      if (s !== '') return s;
    }
    if (key === 'ic') {
      const inner = legacyIdFromMetadata(
        typeof v === 'object' && v !== null
          ? Object.fromEntries(
              Object.entries(v as Record<string, unknown>).map(([ik, iv]) => [`ic.${ik}`, iv]),
            )
          : undefined,
      );
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

const uniq = (xs: readonly string[]): string[] => [...new Set(xs)];

const OrRole = z.object({
  roleType: OrOptString,
  role: z.string().trim().min(1),
  org: OrGuidRef.nullish(),
});

const OrUserId = z.object({ type: OrOptString, identifier: OrOptString });

/** A OneRoster 1.1 or 1.2 user (`GET /users`, `/students`, `/users/{id}`). */
export const OrUser = z
  .object({
    sourcedId: OrId,
    status: OrStatusField,
    dateLastModified: OrOptString,
    metadata: z.unknown().optional(),
    enabledUser: OrOptBool,
    username: OrOptString,
    userIds: orList(OrUserId),
    givenName: OrOptString,
    familyName: OrOptString,
    middleName: OrOptString,
    preferredFirstName: OrOptString,
    preferredLastName: OrOptString,
    role: OrOptString,
    roles: orList(OrRole),
    orgs: orList(OrGuidRef),
    primaryOrg: OrGuidRef.nullish(),
    identifier: OrOptString,
    userMasterIdentifier: OrOptString,
    email: OrOptString,
    sms: OrOptString,
    phone: OrOptString,
    agents: orList(OrGuidRef),
    grades: orList(z.union([z.string(), z.number()]).transform(g => String(g).trim())),
  })
  .transform((u): OrUserRecord => ({
    sourcedId: u.sourcedId,
    status: u.status,
    dateLastModified: u.dateLastModified,
    enabledUser: u.enabledUser,
    roles: uniq(
      [...(u.role ? [u.role] : []), ...u.roles.map(r => r.role)].map(r => r.toLowerCase()),
    ),
    orgSourcedIds: uniq([
      ...u.orgs,
      ...(u.primaryOrg ? [u.primaryOrg] : []),
      ...u.roles.flatMap(r => (r.org ? [r.org] : [])),
    ]),
    username: u.username,
    identifier: u.identifier,
    userMasterIdentifier: u.userMasterIdentifier,
    givenName: u.givenName,
    familyName: u.familyName,
    middleName: u.middleName,
    email: u.email,
    sms: u.sms,
    phone: u.phone,
    agentSourcedIds: uniq(u.agents),
    grades: u.grades.filter(g => g !== ''),
    userIds: u.userIds.flatMap(i =>
      i.type !== undefined && i.identifier !== undefined
        ? [{ type: i.type, identifier: i.identifier }]
        : [],
    ),
    legacyId: legacyIdFromMetadata(u.metadata),
  }));

// ---------------------------------------------------------------------------------------------
// Orgs, classes, enrollments
// ---------------------------------------------------------------------------------------------

export interface OrOrgRecord {
  sourcedId: string;
  status: OrStatus;
  name?: string | undefined;
  /** `district`, `school`, … lower-cased. */
  type?: string | undefined;
  identifier?: string | undefined;
}

export const OrOrg = z
  .object({
    sourcedId: OrId,
    status: OrStatusField,
    name: OrOptString,
    type: OrOptString,
    identifier: OrOptString,
  })
  .transform((o): OrOrgRecord => ({
    sourcedId: o.sourcedId,
    status: o.status,
    name: o.name,
    type: o.type?.toLowerCase(),
    identifier: o.identifier,
  }));

export interface OrClassRecord {
  sourcedId: string;
  status: OrStatus;
  title?: string | undefined;
  classCode?: string | undefined;
  schoolSourcedId?: string | undefined;
}

export const OrClass = z
  .object({
    sourcedId: OrId,
    status: OrStatusField,
    title: OrOptString,
    classCode: OrOptString,
    school: OrGuidRef.nullish(),
    schoolSourcedId: OrOptString,
  })
  .transform((c): OrClassRecord => ({
    sourcedId: c.sourcedId,
    status: c.status,
    title: c.title,
    classCode: c.classCode,
    schoolSourcedId: c.school ?? c.schoolSourcedId,
  }));

export interface OrEnrollmentRecord {
  sourcedId: string;
  status: OrStatus;
  userSourcedId: string;
  classSourcedId: string;
  /** `student`, `teacher`, … lower-cased. */
  role?: string | undefined;
}

export const OrEnrollment = z
  .object({
    sourcedId: OrId,
    status: OrStatusField,
    user: OrGuidRef,
    class: OrGuidRef,
    role: OrOptString,
  })
  .transform((e): OrEnrollmentRecord => ({
    sourcedId: e.sourcedId,
    status: e.status,
    userSourcedId: e.user,
    classSourcedId: e.class,
    role: e.role?.toLowerCase(),
  }));

// ---------------------------------------------------------------------------------------------
// Envelopes: tokens, errors, collections
// ---------------------------------------------------------------------------------------------

/** OAuth2 token response (§1.2). `expires_in` may be a string; `token_type` any case. */
export const OrTokenResponse = z.object({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: z.union([z.number(), z.string().trim().regex(/^\d+$/).transform(Number)]).optional(),
  scope: z.string().optional(),
});

/** IMSX status object (§1.3), as errors are sent. Field names vary in case between vendors. */
export const OrImsxStatus = z
  .object({
    imsx_codeMajor: z.string(),
    imsx_severity: z.string().optional(),
    imsx_description: z.string().nullish(),
    imsx_CodeMinor: z.unknown().optional(),
    imsx_codeMinor: z.unknown().optional(),
  })
  .transform(s => {
    const minor = s.imsx_CodeMinor ?? s.imsx_codeMinor;
    const fields =
      typeof minor === 'object' && minor !== null && 'imsx_codeMinorField' in minor
        ? minor.imsx_codeMinorField
        : undefined;
    const list: unknown[] = Array.isArray(fields) ? fields : fields === undefined ? [] : [fields];
    const codes = list.flatMap(f =>
      typeof f === 'object' && f !== null && 'imsx_codeMinorFieldValue' in f
        ? [String(f.imsx_codeMinorFieldValue)]
        : [],
    );
    return {
      codeMajor: s.imsx_codeMajor,
      severity: s.imsx_severity,
      description: s.imsx_description ?? undefined,
      codeMinor: codes,
    };
  });
export type OrImsxStatus = z.output<typeof OrImsxStatus>;

/**
 * The IMSX status in an error body: the object itself, or wrapped in `statusInfoSet`
 * (`{"statusInfoSet":[{…}]}` in some 1.1 servers). Undefined when the body has none.
 */
export function imsxStatusOf(body: unknown): OrImsxStatus | undefined {
  const candidates: unknown[] = [body];
  if (typeof body === 'object' && body !== null && 'statusInfoSet' in body) {
    const set = body.statusInfoSet;
    const list: unknown[] = Array.isArray(set) ? (set as unknown[]) : [set];
    candidates.push(...list);
  }
  for (const c of candidates) {
    const r = OrImsxStatus.safeParse(c);
    if (r.success) return r.data;
  }
  return undefined;
}

/**
 * The records of a collection response `{"<key>":[…]}` (left unparsed: each is parsed on its
 * own so one bad record is a reject). A missing key or `null` is an empty page; a single
 * object is one record. Throws a message (string) when the body is not an object.
 */
export function collectionRecords(body: unknown, key: string): unknown[] {
  if (body === undefined || body === null || body === '') return [];
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new Error(`expected a JSON object with "${key}"`);
  }
  const v: unknown = (body as Record<string, unknown>)[key];
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? (v as unknown[]) : [v];
}

/** The single record of `GET /users/{id}` (`{"user":{…}}`), or undefined. */
export function singleRecord(body: unknown, key: string): unknown {
  if (typeof body !== 'object' || body === null) return undefined;
  return (body as Record<string, unknown>)[key];
}

// ---------------------------------------------------------------------------------------------
// Per-record parsing
// ---------------------------------------------------------------------------------------------

/** A record that did not match its schema: its id (or `#<index>`), why, and the raw record. */
export interface RecordFailure {
  recordId: string;
  reason: string;
  raw: unknown;
}

/** `path.to.key: message; …` — names the fields, never echoes values (they may be PII). */
export function zodReason(error: z.ZodError): string {
  return error.issues
    .map(i => `${i.path.length ? i.path.map(String).join('.') : '(record)'}: ${i.message}`)
    .join('; ');
}

/**
 * Parse each record with `schema`; failures keep the record's `sourcedId` (or `#index`) and
 * the raw record instead of failing the page.
 */
export function parseRecords<T extends z.ZodType>(
  schema: T,
  records: readonly unknown[],
): { ok: z.output<T>[]; failures: RecordFailure[] } {
  const ok: z.output<T>[] = [];
  const failures: RecordFailure[] = [];
  records.forEach((raw, i) => {
    const r = schema.safeParse(raw);
    if (r.success) {
      ok.push(r.data);
      return;
    }
    const id =
      typeof raw === 'object' && raw !== null
        ? (raw as { sourcedId?: unknown }).sourcedId
        : undefined;
    const recordId =
      (typeof id === 'string' && id.trim() !== '') || typeof id === 'number'
        ? String(id).trim()
        : `#${i}`;
    failures.push({ recordId, reason: zodReason(r.error), raw });
  });
  return { ok, failures };
}
