/**
 * The change-log entries of an import apply, derived from the state the apply re-loaded
 * (src/models/imports/changes.ts, shared by the SQLite and MongoDB adapters): only real changes.
 */
import { linkRef } from '../../src/models/changes/types.js';
import { associationImportChanges, parentImportChanges } from '../../src/models/imports/changes.js';
import type { GuardianLink, ParentAccount } from '../../src/models/types.js';

const D = 'd1';
const account = (id: string, over: Partial<ParentAccount> = {}): ParentAccount => ({
  districtId: D,
  id,
  uniqueId: `U-${id}`,
  givenName: 'Ann',
  familyName: 'Lee',
  email: 'ann@example.org',
  emailNormalized: 'ann@example.org',
  role: 'Parent',
  status: 'active',
  origin: 'import',
  sources: [],
  lockedFields: [],
  ...over,
});
const link = (over: Partial<GuardianLink> = {}): GuardianLink => ({
  districtId: D,
  parentId: 'p1',
  studentSourcedId: 's1',
  origin: 'import',
  status: 'active',
  ...over,
});

describe('parent import entries', () => {
  it('logs creates with profile fields, and updates with before/after of changed fields only', () => {
    const state = {
      parents: [account('p1'), account('p2', { status: 'inactive' })],
      profiles: [{ districtId: D, parentId: 'p1', username: 'ann', schoolSourcedIds: ['b'] }],
      schools: [],
      students: [],
    };
    const out = parentImportChanges(state, {
      creates: [
        {
          account: account('p9', { lockedFields: [] }),
          profile: { username: 'Nine', usernameNormalized: 'nine', schoolSourcedIds: ['z', 'a'] },
        },
      ],
      updates: [
        // the values it already has: nothing changes, no entry
        { parentId: 'p1', set: { givenName: 'Ann', emailNormalized: 'ann@example.org' } },
        {
          parentId: 'p1',
          set: { email: 'ANN@example.org', emailNormalized: 'ann@example.org' },
          profile: { username: 'ann', usernameNormalized: 'ann', schoolSourcedIds: ['b'] },
        },
        { parentId: 'p2', set: { status: 'active', role: 'Guardian' } },
        { parentId: 'gone', set: { givenName: 'X' } },
      ],
    });
    expect(out.map(e => [e.entityId, e.action, e.before, e.after])).toEqual([
      [
        'p9',
        'create',
        undefined,
        {
          uniqueId: 'U-p9',
          givenName: 'Ann',
          familyName: 'Lee',
          email: 'ann@example.org',
          role: 'Parent',
          status: 'active',
          origin: 'import',
          sources: [],
          username: 'Nine',
          schoolSourcedIds: ['a', 'z'],
        },
      ],
      ['p1', 'update', { email: 'ann@example.org' }, { email: 'ANN@example.org' }],
      [
        'p2',
        'reactivate',
        { role: 'Parent', status: 'inactive' },
        { role: 'Guardian', status: 'active' },
      ],
      ['gone', 'update', undefined, { givenName: 'X' }],
    ]);
  });
});

describe('association import entries', () => {
  it('creates and reactivates links, deactivates active ones; no-ops and repeats log nothing', () => {
    const state = {
      parents: [],
      students: [],
      links: [
        link({ parentId: 'p2', status: 'inactive', relationship: 'Aunt' }),
        link({ parentId: 'p3' }),
        link({ parentId: 'p4', origin: 'manual' }),
        link({ parentId: 'p5', origin: 'sis', status: 'inactive' }),
      ],
    };
    const out = associationImportChanges(state, {
      upserts: [
        link({ parentId: 'p1' }), // new
        link({ parentId: 'p1' }), // the same again: one entry
        link({ parentId: 'p2' }), // inactive → reactivated, keeps its relationship
        link({ parentId: 'p3' }), // already active: nothing
      ],
      deactivations: [
        { parentId: 'p4', studentSourcedId: 's1', origin: 'manual' },
        { parentId: 'p4', studentSourcedId: 's1', origin: 'manual' }, // repeat: nothing
        { parentId: 'p5', studentSourcedId: 's1', origin: 'sis' }, // inactive: nothing
      ],
    });
    expect(out.map(e => [e.action, e.entityId, e.before, e.after])).toEqual([
      ['create', linkRef('import', 'p1', 's1'), undefined, { status: 'active' }],
      ['reactivate', linkRef('import', 'p2', 's1'), { status: 'inactive' }, { status: 'active' }],
      ['deactivate', linkRef('manual', 'p4', 's1'), { status: 'active' }, { status: 'inactive' }],
    ]);
    expect(out.every(e => e.entity === 'link' && e.studentSourcedId === 's1')).toBe(true);
  });
});
