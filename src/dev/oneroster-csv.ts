/**
 * Writes OneRoster 1.1/1.2 CSV packages (sis-reference §1.5) from a `OneRosterDistrict`
 * view, as a folder or a zip: the fake "district SFTP drop" for tests, the demo and
 * benchmarks. Bulk packages leave `status`/`dateLastModified` blank and omit `tobedeleted`
 * records; delta packages hold records modified after `since` with both filled.
 *
 * Options reproduce real-world deviations the reader must accept: a UTF-8 BOM, the
 * misspelled header `agentSourceIds`, `enabledUser` as `TRUE`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import JSZip from 'jszip';
import type { Json, JsonObject, OneRosterView } from './oneroster-adapter.js';

export interface OneRosterCsvOptions {
  mode: 'bulk' | 'delta';
  /** Delta: records whose `dateLastModified` is after this ISO date-time. */
  since?: string;
  /** Start each file with a UTF-8 BOM (default true). */
  bom?: boolean;
  /** Write `agentSourceIds` instead of `agentSourcedIds` (district-built exports). */
  misspelledAgentHeader?: boolean;
  /** `enabledUser` as `TRUE`/`FALSE` (default `true`/`false`). */
  upperCaseBooleans?: boolean;
  /** Leave `classes.csv`/`enrollments.csv` out (manifest says absent). */
  withoutClasses?: boolean;
}

const USERS_11 = [
  'sourcedId',
  'status',
  'dateLastModified',
  'enabledUser',
  'orgSourcedIds',
  'role',
  'username',
  'userIds',
  'givenName',
  'familyName',
  'middleName',
  'identifier',
  'email',
  'sms',
  'phone',
  'agentSourcedIds',
  'grades',
  'password',
];
const USERS_12 = [
  'sourcedId',
  'status',
  'dateLastModified',
  'enabledUser',
  'username',
  'userIds',
  'givenName',
  'familyName',
  'middleName',
  'identifier',
  'email',
  'sms',
  'phone',
  'agentSourcedIds',
  'grades',
  'password',
  'userMasterIdentifier',
  'resourceSourcedIds',
  'preferredGivenName',
  'preferredMiddleName',
  'preferredFamilyName',
  'primaryOrgSourcedId',
  'pronouns',
];
const ROLES = [
  'sourcedId',
  'status',
  'dateLastModified',
  'userSourcedId',
  'roleType',
  'role',
  'beginDate',
  'endDate',
  'orgSourcedId',
  'userProfileSourcedId',
];
const ORGS = [
  'sourcedId',
  'status',
  'dateLastModified',
  'name',
  'type',
  'identifier',
  'parentSourcedId',
];
const CLASSES = [
  'sourcedId',
  'status',
  'dateLastModified',
  'title',
  'grades',
  'courseSourcedId',
  'classCode',
  'classType',
  'location',
  'schoolSourcedId',
  'termSourcedIds',
  'subjects',
  'subjectCodes',
  'periods',
];
const ENROLLMENTS = [
  'sourcedId',
  'status',
  'dateLastModified',
  'classSourcedId',
  'schoolSourcedId',
  'userSourcedId',
  'role',
  'primary',
  'beginDate',
  'endDate',
];

const str = (v: Json | undefined): string =>
  v === null || v === undefined ? '' : typeof v === 'object' ? '' : String(v);
const refId = (v: Json | undefined): string =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? str(v.sourcedId) : str(v);
const refIds = (v: Json | undefined): string => (Array.isArray(v) ? v.map(refId).join(',') : '');

/** The file name → CSV text of a package (manifest included). */
export function oneRosterCsvFiles(
  view: OneRosterView,
  opts: OneRosterCsvOptions,
): Record<string, string> {
  const v12 = view.version === '1.2';
  const bulk = opts.mode === 'bulk';
  const since = opts.since === undefined ? undefined : Date.parse(opts.since);
  if (!bulk && (since === undefined || Number.isNaN(since)))
    throw new RangeError('a delta package needs `since` (an ISO date-time)');
  const keep = (r: JsonObject) =>
    bulk ? r.status !== 'tobedeleted' : Date.parse(str(r.dateLastModified)) > (since ?? 0);
  const meta = (r: JsonObject) => (bulk ? ['', ''] : [str(r.status), str(r.dateLastModified)]);
  const bool = (v: Json | undefined) => {
    const b = v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
    return opts.upperCaseBooleans ? (b ? 'TRUE' : 'FALSE') : b ? 'true' : 'false';
  };
  const bom = opts.bom ?? true;
  const csv = (header: string[], rows: string[][]) =>
    (bom ? '\uFEFF' : '') + stringify([header, ...rows], { quoted_match: /,/ });

  const usersHeader = (v12 ? USERS_12 : USERS_11).map(h =>
    h === 'agentSourcedIds' && opts.misspelledAgentHeader ? 'agentSourceIds' : h,
  );
  const users: string[][] = [];
  const roles: string[][] = [];
  for (const u of view.users) {
    if (!keep(u)) continue;
    const [status, date] = meta(u);
    const userIds = Array.isArray(u.userIds)
      ? u.userIds
          .map(x =>
            x !== null && typeof x === 'object' && !Array.isArray(x)
              ? `{${str(x.type)}:${str(x.identifier)}}`
              : '',
          )
          .join(',')
      : '';
    const grades = Array.isArray(u.grades) ? u.grades.map(str).join(',') : '';
    const common: Record<string, string> = {
      sourcedId: str(u.sourcedId),
      status: status ?? '',
      dateLastModified: date ?? '',
      enabledUser: bool(u.enabledUser),
      username: str(u.username),
      userIds,
      givenName: str(u.givenName),
      familyName: str(u.familyName),
      middleName: str(u.middleName),
      identifier: str(u.identifier),
      email: str(u.email),
      sms: str(u.sms),
      phone: str(u.phone),
      agentSourcedIds: refIds(u.agents),
      grades,
      password: '',
      orgSourcedIds: refIds(u.orgs),
      role: str(u.role),
      userMasterIdentifier: str(u.userMasterIdentifier),
      primaryOrgSourcedId: refId(u.primaryOrg),
    };
    users.push((v12 ? USERS_12 : USERS_11).map(h => common[h] ?? ''));
    if (v12 && Array.isArray(u.roles)) {
      u.roles.forEach((r, i) => {
        if (r === null || typeof r !== 'object' || Array.isArray(r)) return;
        roles.push([
          `${str(u.sourcedId)}-r${i}`,
          status ?? '',
          date ?? '',
          str(u.sourcedId),
          str(r.roleType),
          str(r.role),
          '',
          '',
          refId(r.org),
          '',
        ]);
      });
    }
  }
  const orgs = view.orgs
    .filter(keep)
    .map(o => [
      str(o.sourcedId),
      ...meta(o),
      str(o.name),
      str(o.type),
      str(o.identifier),
      refId(o.parent),
    ]);
  const classes = view.classes
    .filter(keep)
    .map(c => [
      str(c.sourcedId),
      ...meta(c),
      str(c.title),
      '',
      '',
      str(c.classCode),
      str(c.classType),
      '',
      refId(c.school),
      '',
      '',
      '',
      '',
    ]);
  const enrollments = view.enrollments
    .filter(keep)
    .map(e => [
      str(e.sourcedId),
      ...meta(e),
      refId(e.class),
      '',
      refId(e.user),
      str(e.role),
      str(e.primary),
      '',
      '',
    ]);

  const mode = opts.mode;
  const files: Record<string, string> = {
    'orgs.csv': csv(ORGS, orgs),
    'users.csv': csv(usersHeader, users),
  };
  if (!opts.withoutClasses) {
    files['classes.csv'] = csv(CLASSES, classes);
    files['enrollments.csv'] = csv(ENROLLMENTS, enrollments);
  }
  if (v12) files['roles.csv'] = csv(ROLES, roles);
  const manifest: string[][] = [
    ['manifest.version', '1.0'],
    ['oneroster.version', view.version],
  ];
  for (const f of [
    'academicSessions',
    'categories',
    'classes',
    'classResources',
    'courses',
    'courseResources',
    'demographics',
    'enrollments',
    'lineItems',
    'orgs',
    'resources',
    'results',
    'users',
    ...(v12 ? ['roles'] : []),
  ]) {
    manifest.push([`file.${f}`, `${f}.csv` in files ? mode : 'absent']);
  }
  manifest.push(['source.systemName', 'guardian-sync fake SIS'], ['source.systemCode', 'gsync']);
  files['manifest.csv'] = csv(['propertyName', 'value'], manifest);
  return files;
}

/** Write a package's files into `dir` (created). */
export function writeOneRosterCsvFolder(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, 'utf8');
}

/** Write a package as a zip file at `path` (deflated). */
export async function writeOneRosterCsvZip(
  path: string,
  files: Record<string, string>,
): Promise<void> {
  const zip = new JSZip();
  for (const [name, text] of Object.entries(files)) zip.file(name, text);
  const buf = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' });
  writeFileSync(path, buf);
}
