/** The pure import planners: identity, each option, duplicates, clear semantics, fingerprints. */
import type { AssociationImportState, ParentImportState } from '../../src/models/imports/types.js';
import type { GuardianLink, ParentAccount } from '../../src/models/types.js';
import {
  associationStateFingerprint,
  associationWrite,
  importParentAccountId,
  parentStateFingerprint,
  planAssociationImport,
  planParentImport,
  zeroPadCheck,
  zeroPadded,
  type ParentImportRecord,
  type ParentPlanOptions,
} from '../../src/reconcile/import-plan.js';

const D = 'd1';
const COLUMNS = {
  firstName: 'First Name',
  lastName: 'Last Name',
  uniqueId: 'Unique ID',
  email: 'Email',
  username: 'Username',
  role: 'Role',
  school: 'School',
};

function opts(over: Partial<ParentPlanOptions> = {}): ParentPlanOptions {
  return {
    districtId: D,
    fileName: 'parents.csv',
    columns: COLUMNS,
    roles: { source: 'fixed', role: 'Parent' },
    knownRoles: ['Parent', 'Guardian'],
    schools: { source: 'none' },
    dontUpdateExisting: false,
    dontAllowDuplicates: false,
    sendActivationEmail: false,
    ...over,
  };
}

function rec(
  row: number,
  uniqueId: string,
  over: Partial<ParentImportRecord> = {},
): ParentImportRecord {
  return {
    row,
    uniqueId,
    firstName: `First${uniqueId}`,
    lastName: 'Last',
    email: `${uniqueId.toLowerCase()}@example.org`,
    ...over,
  };
}

function account(id: string, over: Partial<ParentAccount> = {}): ParentAccount {
  return {
    districtId: D,
    id,
    givenName: 'Old',
    familyName: 'Name',
    role: 'Parent',
    status: 'active',
    origin: 'sis',
    sources: [],
    lockedFields: [],
    ...over,
  };
}

const SCHOOLS = [
  { sourcedId: 'sch-1', name: 'Lincoln Elementary' },
  { sourcedId: 'sch-2', name: 'Washington Middle' },
];

function state(
  parents: ParentAccount[] = [],
  over: Partial<ParentImportState> = {},
): ParentImportState {
  return { parents, profiles: [], schools: SCHOOLS, students: [], ...over };
}

describe('planParentImport', () => {
  it('creates import-origin accounts with deterministic ids, the fixed role and school', () => {
    const { plan, issues } = planParentImport(
      [rec(2, 'P1', { email: ' Ann@Example.org ', username: 'ann' })],
      state(),
      opts({ schools: { source: 'fixed', school: 'Lincoln Elementary' } }),
    );
    expect(issues).toEqual([]);
    expect(plan.creates).toEqual([
      {
        rows: [2],
        account: {
          districtId: D,
          id: importParentAccountId(D, 'P1'),
          uniqueId: 'P1',
          givenName: 'FirstP1',
          familyName: 'Last',
          email: ' Ann@Example.org ',
          emailNormalized: 'ann@example.org',
          role: 'Parent',
          status: 'active',
          origin: 'import',
          sources: [],
          lockedFields: [],
        },
        profile: { username: 'ann', usernameNormalized: 'ann', schoolSourcedIds: ['sch-1'] },
      },
    ]);
    expect(importParentAccountId(D, 'P1')).toBe(importParentAccountId(D, 'P1'));
    expect(importParentAccountId(D, 'P1')).not.toBe(importParentAccountId('d2', 'P1'));
  });

  it('matches by Unique ID and updates fields; a sis account gets the edited fields locked', () => {
    const a = account('pa_1', {
      uniqueId: 'P1',
      email: 'old@example.org',
      emailNormalized: 'old@example.org',
    });
    const { plan } = planParentImport([rec(2, 'P1', { firstName: 'New' })], state([a]), opts());
    expect(plan.creates).toEqual([]);
    expect(plan.updates).toEqual([
      {
        rows: [2],
        parentId: 'pa_1',
        uniqueId: 'P1',
        action: 'update',
        changes: ['email', 'familyName', 'givenName'],
        set: {
          givenName: 'New',
          familyName: 'Last',
          email: 'p1@example.org',
          emailNormalized: 'p1@example.org',
          lockedFields: ['email', 'familyName', 'givenName'],
        },
        profile: undefined,
      },
    ]);
  });

  it('an email differing only in case is not a change; an identical row is "unchanged"', () => {
    const a = account('pa_1', {
      uniqueId: 'P1',
      givenName: 'FirstP1',
      familyName: 'Last',
      email: 'P1@EXAMPLE.ORG',
      emailNormalized: 'p1@example.org',
      origin: 'import',
    });
    const { plan } = planParentImport([rec(2, 'P1')], state([a]), opts());
    expect(plan.updates).toEqual([]);
    expect(plan.skips).toEqual([
      { rows: [2], parentId: 'pa_1', uniqueId: 'P1', reason: 'unchanged', changes: [] },
    ]);
  });

  it('matches an account without Unique ID by its unambiguous email and stores the Unique ID', () => {
    const a = account('pa_1', {
      email: 'p1@example.org',
      emailNormalized: 'p1@example.org',
      origin: 'access-code',
    });
    const { plan } = planParentImport([rec(2, 'P1')], state([a]), opts());
    expect(plan.updates[0]?.set.uniqueId).toBe('P1');
    expect(plan.creates).toEqual([]);
  });

  it('an ambiguous email is a row error, never a guess', () => {
    const a = account('pa_1', { emailNormalized: 'p1@example.org' });
    const b = account('pa_2', { emailNormalized: 'p1@example.org' });
    const { plan, issues } = planParentImport([rec(2, 'P1')], state([a, b]), opts());
    expect(plan.creates).toEqual([]);
    expect(plan.updates).toEqual([]);
    expect(issues).toEqual([
      expect.objectContaining({
        row: 2,
        column: 'Email',
        severity: 'error',
        reason: expect.stringMatching(/^ambiguous: 2 parent accounts/) as unknown,
      }),
    ]);
  });

  describe('an email that belongs to another Unique ID', () => {
    const other = account('pa_x', {
      uniqueId: 'X9',
      emailNormalized: 'p1@example.org',
      email: 'p1@example.org',
    });

    it('merges into that account with a warning by default (one mailbox, one account)', () => {
      const { plan, issues } = planParentImport([rec(2, 'P1')], state([other]), opts());
      expect(plan.creates).toEqual([]);
      expect(plan.updates.map(u => [u.parentId, u.set.uniqueId])).toEqual([['pa_x', undefined]]);
      expect(issues).toEqual([
        expect.objectContaining({
          row: 2,
          severity: 'warning',
          reason: expect.stringMatching(
            /matched by email to the account of Unique ID X9/,
          ) as unknown,
        }),
        expect.objectContaining({
          row: 2,
          severity: 'warning',
          reason: expect.stringMatching(/^matched by email to the existing account of /) as unknown,
        }),
      ]);
    });

    it('warns before a different name overwrites the matched account, not when names agree', () => {
      const same = account('pa_y', {
        uniqueId: 'X9',
        emailNormalized: 'p1@example.org',
        email: 'p1@example.org',
        givenName: rec(2, 'P1').firstName,
        familyName: rec(2, 'P1').lastName,
      });
      const quiet = planParentImport([rec(2, 'P1')], state([same]), opts());
      expect(quiet.issues.filter(i => /its name will change/.test(i.reason))).toEqual([]);
      const loud = planParentImport([rec(2, 'P1')], state([other]), opts());
      expect(loud.issues.filter(i => /its name will change/.test(i.reason))).toHaveLength(1);
    });

    it('is rejected, never merged, with "don\'t allow duplicates"', () => {
      const { plan, issues } = planParentImport(
        [rec(2, 'P1')],
        state([other]),
        opts({ dontAllowDuplicates: true }),
      );
      expect(plan.creates).toEqual([]);
      expect(plan.updates).toEqual([]);
      expect(plan.skips).toEqual([]);
      expect(issues).toEqual([
        expect.objectContaining({
          row: 2,
          column: 'Email',
          value: 'p1@example.org',
          severity: 'error',
          reason: 'email belongs to Unique ID X9; duplicates are not allowed',
        }),
      ]);
    });

    it('for a row matched by Unique ID: email left unchanged (warning), or rejected with the option', () => {
      const mine = account('pa_1', {
        uniqueId: 'P1',
        email: 'mine@example.org',
        emailNormalized: 'mine@example.org',
      });
      const lenient = planParentImport([rec(2, 'P1')], state([mine, other]), opts());
      expect(lenient.plan.updates[0]?.set.email).toBeUndefined();
      expect(lenient.issues[0]).toMatchObject({
        severity: 'warning',
        reason: expect.stringMatching(/^email not changed/) as unknown,
      });
      const strict = planParentImport(
        [rec(2, 'P1')],
        state([mine, other]),
        opts({ dontAllowDuplicates: true }),
      );
      expect(strict.plan.updates).toEqual([]);
      expect(strict.issues[0]).toMatchObject({
        severity: 'error',
        reason: expect.stringMatching(/duplicates are not allowed/) as unknown,
      });
    });
  });

  it('a username taken by another account is a row error', () => {
    const a = account('pa_1', { uniqueId: 'Q1' });
    const { plan, issues } = planParentImport(
      [rec(2, 'P1', { username: 'JDoe' })],
      state([a], {
        profiles: [
          {
            districtId: D,
            parentId: 'pa_1',
            username: 'jdoe',
            usernameNormalized: 'jdoe',
            schoolSourcedIds: [],
          },
        ],
      }),
      opts(),
    );
    expect(plan.creates).toEqual([]);
    expect(issues).toEqual([
      expect.objectContaining({
        row: 2,
        column: 'Username',
        reason: 'username is taken by another parent account (Unique ID Q1)',
      }),
    ]);
  });

  it('repeated rows of one person collapse with a warning and union their schools; a conflicting repeat is an error', () => {
    const { plan, issues } = planParentImport(
      [
        rec(2, 'P1', { school: 'Lincoln Elementary' }),
        rec(3, 'P1', { school: 'sch-2', email: 'P1@example.org' }),
        rec(4, 'P1', { school: 'sch-2', firstName: 'Other' }),
      ],
      state(),
      opts({ schools: { source: 'file', valueTable: {} } }),
    );
    expect(plan.creates).toHaveLength(1);
    expect(plan.creates[0]?.rows).toEqual([2, 3]);
    expect(plan.creates[0]?.profile.schoolSourcedIds).toEqual(['sch-1', 'sch-2']);
    expect(issues.map(i => [i.row, i.severity, i.column])).toEqual([
      [3, 'warning', 'Unique ID'],
      [4, 'error', 'First Name'],
    ]);
    expect(issues[1]?.reason).toBe(
      'Unique ID P1 is already in row 2 with a different First Name; one Unique ID is one person',
    );
  });

  it('"don\'t update existing records" leaves matched accounts untouched and reports what it withheld', () => {
    const a = account('pa_1', { uniqueId: 'P1', status: 'inactive' });
    const { plan } = planParentImport(
      [rec(2, 'P1'), rec(3, 'P2')],
      state([a]),
      opts({ dontUpdateExisting: true }),
    );
    expect(plan.updates).toEqual([]);
    expect(plan.creates.map(c => c.account.uniqueId)).toEqual(['P2']);
    expect(plan.skips).toEqual([
      {
        rows: [2],
        parentId: 'pa_1',
        uniqueId: 'P1',
        reason: 'dont-update-existing',
        changes: ['email', 'familyName', 'givenName', 'status'],
      },
    ]);
  });

  it('reactivates a matched inactive account (same record, never a second one)', () => {
    const a = account('pa_1', {
      uniqueId: 'P1',
      status: 'inactive',
      origin: 'import',
      givenName: 'FirstP1',
      familyName: 'Last',
      email: 'p1@example.org',
      emailNormalized: 'p1@example.org',
    });
    const { plan } = planParentImport([rec(2, 'P1')], state([a]), opts());
    expect(plan.updates).toEqual([
      expect.objectContaining({
        parentId: 'pa_1',
        action: 'reactivate',
        set: { status: 'active' },
      }),
    ]);
  });

  it('roles from the file must exist (case-insensitive, stored in the district spelling)', () => {
    const { plan, issues } = planParentImport(
      [rec(2, 'P1', { role: 'guardian' }), rec(3, 'P2', { role: 'Grandma' }), rec(4, 'P3')],
      state(),
      opts({ roles: { source: 'file' } }),
    );
    expect(plan.creates.map(c => [c.account.uniqueId, c.account.role])).toEqual([
      ['P1', 'Guardian'],
    ]);
    expect(issues.map(i => [i.row, i.column, i.reason])).toEqual([
      [3, 'Role', 'role "Grandma" does not exist in this district (roles: Parent, Guardian)'],
      [4, 'Role', 'Role is blank'],
    ]);
  });

  it('schools from the file go through the value table, then school ids and names; unknown values are row errors', () => {
    const { plan, issues } = planParentImport(
      [
        rec(2, 'P1', { school: 'LES' }),
        rec(3, 'P2', { school: 'washington  middle' }),
        rec(4, 'P3', { school: 'Hogwarts' }),
        rec(5, 'P4'),
      ],
      state(),
      opts({ schools: { source: 'file', valueTable: { les: 'sch-1' } } }),
    );
    expect(plan.creates.map(c => [c.account.uniqueId, c.profile.schoolSourcedIds])).toEqual([
      ['P1', ['sch-1']],
      ['P2', ['sch-2']],
    ]);
    expect(issues.map(i => [i.row, i.column, i.value, i.reason.slice(0, 31)])).toEqual([
      [4, 'School', 'Hogwarts', 'school "Hogwarts" is not in the'],
      [5, 'School', '', 'School is blank'],
    ]);
  });

  it('activation emails: one per new account with an email; rows without email are reported', () => {
    const { plan, issues } = planParentImport(
      [rec(2, 'P1'), rec(3, 'P2', { email: undefined, username: 'p2' })],
      state(),
      opts({ sendActivationEmail: true }),
    );
    expect(plan.activationParentIds).toEqual([importParentAccountId(D, 'P1')]);
    expect(issues).toEqual([
      expect.objectContaining({
        row: 3,
        column: 'Email',
        severity: 'warning',
        reason: 'no email: activation email not sent',
      }),
    ]);
    const without = planParentImport([rec(2, 'P1')], state(), opts());
    expect(without.plan.activationParentIds).toEqual([]);
  });

  it('is deterministic, and the state fingerprint changes with any relevant field', () => {
    const s = state([account('pa_1', { uniqueId: 'P1' })]);
    const records = [rec(2, 'P1'), rec(3, 'P2')];
    expect(planParentImport(records, s, opts())).toEqual(
      planParentImport([...records].reverse(), s, opts()),
    );
    const f = parentStateFingerprint(s, ['Parent']);
    expect(parentStateFingerprint(state([account('pa_1', { uniqueId: 'P1' })]), ['Parent'])).toBe(
      f,
    );
    expect(
      parentStateFingerprint(state([account('pa_1', { uniqueId: 'P1', status: 'inactive' })]), [
        'Parent',
      ]),
    ).not.toBe(f);
    expect(parentStateFingerprint(s, ['Parent', 'Guardian'])).not.toBe(f);
    expect(
      parentStateFingerprint(state([account('pa_1', { uniqueId: 'P1' })], { schools: [] }), [
        'Parent',
      ]),
    ).not.toBe(f);
  });
});

// --- associations ------------------------------------------------------------------------

function link(
  parentId: string,
  studentSourcedId: string,
  over: Partial<GuardianLink> = {},
): GuardianLink {
  return { districtId: D, parentId, studentSourcedId, origin: 'import', status: 'active', ...over };
}

function astate(
  links: GuardianLink[] = [],
  over: Partial<AssociationImportState> = {},
): AssociationImportState {
  return {
    parents: [
      { id: 'pa_1', uniqueId: 'P1', status: 'active' },
      { id: 'pa_2', uniqueId: 'P2', status: 'active' },
      { id: 'pa_3', uniqueId: 'P3', status: 'inactive' },
    ],
    students: [
      { sourcedId: 's1', uniqueId: 'S1', status: 'active' },
      { sourcedId: 's2', uniqueId: 'S2', status: 'active' },
      { sourcedId: 's3', uniqueId: 'S3', status: 'inactive' },
      { sourcedId: 's4a', uniqueId: 'S4', status: 'active' },
      { sourcedId: 's4b', uniqueId: 'S4', status: 'active' },
    ],
    links,
    ...over,
  };
}

const aopts = (clearExisting = false) => ({
  districtId: D,
  fileName: 'links.csv',
  columns: { parentUniqueId: 'Parent ID', studentUniqueId: 'Student ID' },
  clearExisting,
});
const pair = (row: number, p: string, s: string) => ({
  row,
  parentUniqueId: p,
  studentUniqueId: s,
});

describe('planAssociationImport', () => {
  it('adds new import links, reactivates inactive ones, reports existing ones as unchanged', () => {
    const { plan, issues } = planAssociationImport(
      [pair(2, 'P1', 'S1'), pair(3, 'P2', 'S1'), pair(4, 'P1', 'S2')],
      astate([
        link('pa_2', 's1', { status: 'inactive' }),
        link('pa_1', 's2'),
        link('pa_1', 's1', { origin: 'sis' }),
      ]),
      aopts(),
    );
    expect(issues).toEqual([]);
    expect(plan.adds.map(l => l.row)).toEqual([2]); // a sis link does not make an import link redundant
    expect(plan.reactivations.map(l => l.row)).toEqual([3]);
    expect(plan.unchanged.map(l => l.row)).toEqual([4]);
    expect(plan.removals).toEqual([]);
    expect(associationWrite(D, plan).upserts).toEqual([link('pa_1', 's1'), link('pa_2', 's1')]);
  });

  it('names every bad row precisely: unknown, inactive, ambiguous, duplicate pair', () => {
    const { plan, issues } = planAssociationImport(
      [
        pair(2, 'P1', 'S1'),
        pair(3, 'NOPE', 'S1'),
        pair(4, 'P1', 'NOPE'),
        pair(5, 'P3', 'S2'),
        pair(6, 'P1', 'S3'),
        pair(7, 'P1', 'S4'),
        pair(8, 'P1', 'S1'),
      ],
      astate(),
      aopts(),
    );
    expect(plan.adds.map(l => l.row)).toEqual([2]);
    expect(issues.map(i => [i.row, i.column, i.value, i.reason])).toEqual([
      [3, 'Parent ID', 'NOPE', 'no parent account has this Unique ID'],
      [4, 'Student ID', 'NOPE', 'no student has this Unique ID'],
      [5, 'Parent ID', 'P3', 'the parent account is inactive'],
      [6, 'Student ID', 'S3', 'the student is inactive'],
      [7, 'Student ID', 'S4', 'ambiguous: 2 students have this Unique ID'],
      [8, '', 'P1 / S1', 'duplicate pair: same as row 2; the rows are collapsed into one link'],
    ]);
    // a repeated pair is a warning (as a repeated parent row is), the others errors
    expect(issues.map(i => i.severity)).toEqual([...Array<string>(5).fill('error'), 'warning']);
  });

  it('without "clear", links are only added', () => {
    const { plan } = planAssociationImport(
      [pair(2, 'P1', 'S1')],
      astate([link('pa_2', 's1', { origin: 'manual' })]),
      aopts(),
    );
    expect(plan.removals).toEqual([]);
  });

  it('"clear" replaces the named students\' links by the file\'s; sis links stay; other students untouched', () => {
    const links = [
      link('pa_2', 's1'), // import link not in the file → deactivated
      link('pa_2', 's1', { origin: 'manual' }), // manual link of the same pair → deactivated
      link('pa_3', 's1', { origin: 'access-code' }), // → deactivated
      link('pa_9', 's1', { origin: 'sis' }), // sis → kept, reported
      link('pa_1', 's1', { origin: 'manual' }), // listed pair (other origin) → kept
      link('pa_5', 's1', { status: 'inactive' }), // already inactive → nothing
      link('pa_2', 's2'), // student not in the file → untouched
    ];
    const { plan } = planAssociationImport([pair(2, 'P1', 'S1')], astate(links), aopts(true));
    expect(plan.adds.map(l => [l.parentId, l.studentSourcedId])).toEqual([['pa_1', 's1']]);
    expect(plan.removals.map(r => [r.parentId, r.origin])).toEqual([
      ['pa_2', 'import'],
      ['pa_2', 'manual'],
      ['pa_3', 'access-code'],
    ]);
    expect(plan.keptSis.map(r => [r.parentId, r.studentUniqueId])).toEqual([['pa_9', 'S1']]);
    expect(associationWrite(D, plan).deactivations).toEqual([
      { parentId: 'pa_2', studentSourcedId: 's1', origin: 'import' },
      { parentId: 'pa_2', studentSourcedId: 's1', origin: 'manual' },
      { parentId: 'pa_3', studentSourcedId: 's1', origin: 'access-code' },
    ]);
  });

  it('"clear" keeps every link of a student whose row has an error (bad input never removes data)', () => {
    const { plan } = planAssociationImport(
      [pair(2, 'TYPO', 'S1'), pair(3, 'P1', 'S2')],
      astate([link('pa_2', 's1'), link('pa_2', 's2')]),
      aopts(true),
    );
    expect(plan.notCleared).toEqual([{ studentUniqueId: 'S1', rows: [2] }]);
    expect(plan.removals.map(r => r.studentSourcedId)).toEqual(['s2']);
  });

  it('the state fingerprint changes when a link of a named student changes', () => {
    const f = associationStateFingerprint(astate([link('pa_1', 's1')]));
    expect(associationStateFingerprint(astate([link('pa_1', 's1')]))).toBe(f);
    expect(
      associationStateFingerprint(astate([link('pa_1', 's1', { status: 'inactive' })])),
    ).not.toBe(f);
  });
});

describe('issue 19: multi-row layouts, numeric ids, students, texts', () => {
  it('continuation rows collapse without a warning and are listed as merged', () => {
    const { plan, issues, merged } = planParentImport(
      [rec(2, 'P1'), rec(3, 'P1', { continuation: true }), rec(4, 'P1')],
      state(),
      opts(),
    );
    expect(plan.creates.map(c => c.rows)).toEqual([[2, 3, 4]]);
    expect(merged).toEqual([{ row: 3, into: 2, uniqueId: 'P1' }]);
    // a plain repeat still warns
    expect(issues.map(i => [i.row, i.severity])).toEqual([[4, 'warning']]);
  });

  it('a continuation row with another email is an error, not merged', () => {
    const { merged, issues } = planParentImport(
      [rec(2, 'P1'), rec(3, 'P1', { continuation: true, email: 'other@example.org' })],
      state(),
      opts(),
    );
    expect(merged).toEqual([]);
    expect(issues.map(i => [i.row, i.severity])).toEqual([[3, 'error']]);
  });

  it('zeroPadded and zeroPadCheck', () => {
    expect(zeroPadded('123').slice(0, 2)).toEqual(['0123', '00123']);
    expect(zeroPadded('123')).toHaveLength(9);
    expect(zeroPadded('A1')).toEqual([]);
    const check = zeroPadCheck(
      'Unique ID',
      [
        { id: '00123', who: 'Ann' },
        { id: '123', who: 'Bo' },
      ],
      [],
    );
    expect(check('123')).toMatch(/did you mean 00123 \(Ann\)\?/);
    expect(check('124')).toBeUndefined();
    const byColumn = zeroPadCheck('Unique ID', [], ['0045', 'X1', '0046']);
    expect(byColumn('7')).toMatch(/probably 0007\?/);
    expect(byColumn('12345')).toBeUndefined();
  });

  it('a numeric parent Unique ID whose padded spelling is an account is an error, never a new account', () => {
    const a = account('pa_1', { uniqueId: '00042', givenName: 'Ann', familyName: 'Lee' });
    const { plan, issues } = planParentImport(
      [rec(2, '42', { numericId: true })],
      state([a]),
      opts(),
    );
    expect(plan.creates).toEqual([]);
    expect(plan.updates).toEqual([]);
    expect(issues[0]?.reason).toMatch(/as the number 42.*did you mean 00042 \(Ann Lee\)\?/);
    // the same id as text is a plain new account
    expect(planParentImport([rec(2, '42')], state([a]), opts()).plan.creates).toHaveLength(1);
  });

  it('a student is refused only when the row would create an account', () => {
    const kid = {
      sourcedId: 's1',
      uniqueId: 'P1',
      givenName: 'Kim',
      familyName: 'Lee',
      status: 'active' as const,
    };
    const refused = planParentImport([rec(2, 'P1')], state([], { students: [kid] }), opts());
    expect(refused.plan.creates).toEqual([]);
    expect(refused.issues[0]?.reason).toMatch(/^Unique ID P1 belongs to the student Kim Lee/);
    // an existing parent account with that Unique ID is updated as usual
    const a = account('pa_1', { uniqueId: 'P1' });
    const updated = planParentImport([rec(2, 'P1')], state([a], { students: [kid] }), opts());
    expect(updated.issues).toEqual([]);
    expect(updated.plan.updates).toHaveLength(1);
  });

  it('the state fingerprint covers the students', () => {
    const kid = {
      sourcedId: 's1',
      uniqueId: 'S1',
      givenName: 'Kim',
      familyName: 'Lee',
      status: 'active' as const,
    };
    expect(parentStateFingerprint(state([], { students: [kid] }), ['Parent'])).not.toBe(
      parentStateFingerprint(state([], { students: [{ ...kid, status: 'inactive' }] }), ['Parent']),
    );
  });

  it('"don\'t update existing": the name warning says the name stays', () => {
    const other = account('pa_2', {
      uniqueId: 'X9',
      email: 'p1@example.org',
      emailNormalized: 'p1@example.org',
    });
    const { issues } = planParentImport(
      [rec(2, 'P1')],
      state([other]),
      opts({ dontUpdateExisting: true }),
    );
    expect(issues.map(i => i.reason)).toContain(
      "matched by email to the existing account of Old Name; its name stays Old Name (don't update existing)",
    );
  });
});
