/**
 * The imports repository contract (`src/models/imports/`): every implementation (SQLite,
 * MongoDB) must pass it. Roster data is seeded through the roster store itself
 * (`reconcileChunk` with hand-made plans), as production data would be.
 */
import { StoreConflictError } from '../../src/errors.js';
import {
  changeLogRepository,
  linkRef,
  type ChangeContext,
  type ChangeEntry,
} from '../../src/models/changes/index.js';
import { importRepository } from '../../src/models/imports/index.js';
import {
  PART_SIZE,
  type ImportRepository,
  type ParentImportWrite,
  type StoredPreview,
} from '../../src/models/imports/types.js';
import type { ParentAccount, RosterStore } from '../../src/models/types.js';
import { keys, link, parent, plan, student } from './store.contract.js';

const A = 'district-a';
const B = 'district-b';
const NOW = new Date('2025-03-01T12:00:00.000Z');
const LATER = new Date('2025-03-02T12:00:00.000Z');

function preview(id: string, over: Partial<StoredPreview> = {}): StoredPreview {
  return {
    id,
    districtId: A,
    kind: 'parents',
    status: 'previewed',
    createdAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 3600_000).toISOString(),
    meta: { note: 'school "St. Mary\'s" → $x', nested: { 'a.b': 1 } },
    ...over,
  };
}

function importAccount(id: string, over: Partial<ParentAccount> = {}): ParentAccount {
  return parent(id, { origin: 'import', sisRole: undefined, ...over });
}

const nothing: ParentImportWrite = { creates: [], updates: [] };

/** The change context a confirm of preview `id` passes. */
function importChange(
  id: string,
  trigger: 'parents' | 'associations' = 'parents',
  notify?: boolean,
): ChangeContext {
  return {
    cause: { kind: 'import', id, trigger, ...(notify === undefined ? {} : { notify }) },
    actor: 'api:admin-token',
  };
}

export function runImportRepositoryContract(
  name: string,
  open: () => Promise<RosterStore>,
  dispose: (store: RosterStore) => Promise<void>,
): void {
  describe(`imports repository contract: ${name}`, () => {
    let store: RosterStore;
    let repo: ImportRepository;

    beforeEach(async () => {
      store = await open();
      repo = await importRepository(store);
      await store.upsertSchools(A, [
        { sourcedId: 'sch-2', name: 'Washington' },
        { sourcedId: 'sch-1', name: 'Lincoln' },
      ]);
      await store.upsertSchools(B, [{ sourcedId: 'sch-9', name: 'Other' }]);
      await store.reconcileChunk(
        A,
        keys(),
        () =>
          plan({
            students: [
              { action: 'create', record: student('s1', { uniqueId: 'S1' }) },
              { action: 'create', record: student('s2', { uniqueId: 'S2', status: 'inactive' }) },
            ],
            parentCreates: [
              parent('pa_1', {
                uniqueId: 'P1',
                email: 'One@Example.org',
                emailNormalized: 'one@example.org',
                sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
              }),
              parent('pa_2', { uniqueId: 'P2', status: 'inactive' }),
            ],
            links: [
              { action: 'add', link: link('pa_1', 's1') },
              { action: 'add', link: link('pa_2', 's1', { origin: 'manual' }) },
            ],
          }),
        { dryRun: false },
      );
      await store.reconcileChunk(
        B,
        keys(),
        () =>
          plan({
            students: [{ action: 'create', record: student('s1', { uniqueId: 'S1' }, B) }],
            parentCreates: [parent('pa_1', { uniqueId: 'P1' }, B)],
          }),
        { dryRun: false },
      );
    });
    afterEach(() => dispose(store));

    /** The district's change-log entries written by imports (the seed is logged as system). */
    const importEntries = async (districtId = A): Promise<ChangeEntry[]> =>
      (await changeLogRepository(store))
        .list(districtId, { limit: 1000 })
        .then(all => all.filter(e => e.cause.kind === 'import'));

    it('is cached per store and init is idempotent', async () => {
      expect(await importRepository(store)).toBe(repo);
      await repo.init();
      await repo.init();
      expect(await repo.listSchools(A)).toEqual([
        { sourcedId: 'sch-1', name: 'Lincoln' },
        { sourcedId: 'sch-2', name: 'Washington' },
      ]);
    });

    it('loads parent import state by Unique ID and normalized email, with sources, per district', async () => {
      const s = await repo.loadParentImportState(A, {
        uniqueIds: ['P2', 'NOPE'],
        emailsNormalized: ['one@example.org'],
        usernamesNormalized: [],
      });
      expect(s.parents.map(p => [p.id, p.status, p.sources])).toEqual([
        ['pa_1', 'active', [{ connector: 'powerschool', sourcedId: 'g1' }]],
        ['pa_2', 'inactive', []],
      ]);
      expect(s.profiles).toEqual([]);
      expect(s.schools.map(x => x.sourcedId)).toEqual(['sch-1', 'sch-2']);
      const none = await repo.loadParentImportState(A, {
        uniqueIds: [],
        emailsNormalized: [],
        usernamesNormalized: [],
      });
      expect(none.parents).toEqual([]);
      expect(none.students).toEqual([]);
    });

    it('loads the students a parent file names, by Unique ID or normalized email (issue 19)', async () => {
      await store.reconcileChunk(
        A,
        keys(),
        () =>
          plan({
            students: [
              {
                action: 'create',
                record: student('s3', { uniqueId: 'S3', email: ' Kid.Three@Example.org ' }),
              },
            ],
          }),
        { dryRun: false },
      );
      const s = await repo.loadParentImportState(A, {
        uniqueIds: ['S2', 'P1'],
        emailsNormalized: ['kid.three@example.org', 'one@example.org'],
        usernamesNormalized: [],
      });
      expect(s.students.map(x => [x.sourcedId, x.uniqueId, x.status])).toEqual([
        ['s2', 'S2', 'inactive'],
        ['s3', 'S3', 'active'],
      ]);
      expect(s.students[1]).toMatchObject({ email: ' Kid.Three@Example.org ' });
      // per district
      const b = await repo.loadParentImportState(B, {
        uniqueIds: ['S2', 'S3'],
        emailsNormalized: ['kid.three@example.org'],
        usernamesNormalized: [],
      });
      expect(b.students).toEqual([]);
    });

    it('loads association state: parents and students by Unique ID, every link of those students', async () => {
      const s = await repo.loadAssociationState(A, {
        parentUniqueIds: ['P1', 'P2', 'NOPE'],
        studentUniqueIds: ['S1', 'S2'],
      });
      expect([...s.parents].sort((x, y) => x.id.localeCompare(y.id))).toEqual([
        { id: 'pa_1', uniqueId: 'P1', status: 'active' },
        { id: 'pa_2', uniqueId: 'P2', status: 'inactive' },
      ]);
      expect([...s.students].sort((x, y) => x.sourcedId.localeCompare(y.sourcedId))).toEqual([
        { sourcedId: 's1', uniqueId: 'S1', status: 'active' },
        { sourcedId: 's2', uniqueId: 'S2', status: 'inactive' },
      ]);
      expect(s.links.map(l => [l.parentId, l.studentSourcedId, l.origin]).sort()).toEqual([
        ['pa_1', 's1', 'sis'],
        ['pa_2', 's1', 'manual'],
      ]);
      const b = await repo.loadAssociationState(B, {
        parentUniqueIds: ['P1'],
        studentUniqueIds: ['S1'],
      });
      expect(b.links).toEqual([]);
    });

    it('stores previews with large parts in order; reads are scoped by district', async () => {
      const records = Array.from({ length: PART_SIZE * 2 + 7 }, (_, i) => ({ row: i + 2 }));
      await repo.savePreview(preview('imp_1'), { records, issues: [] }, NOW);
      expect(await repo.getPreview(B, 'imp_1')).toBeUndefined();
      const p = await repo.getPreview(A, 'imp_1');
      expect(p).toEqual(preview('imp_1'));
      expect(await repo.getPreviewPart('imp_1', 'records')).toEqual(records);
      expect(await repo.getPreviewPart('imp_1', 'issues')).toEqual([]);
      expect(await repo.getPreviewPart('imp_1', 'absent')).toEqual([]);
    });

    it('deletes expired previews of the district when saving a new one', async () => {
      await repo.savePreview(
        preview('imp_old', { expiresAt: new Date(NOW.getTime() + 1000).toISOString() }),
        { records: [{ row: 1 }] },
        NOW,
      );
      await repo.savePreview(preview('imp_new'), {}, LATER);
      expect(await repo.getPreview(A, 'imp_old')).toBeUndefined();
      expect(await repo.getPreviewPart('imp_old', 'records')).toEqual([]);
      expect(await repo.getPreview(A, 'imp_new')).toBeDefined();
    });

    it('applies a parent import: creates, updates, profiles; marks the preview applied; a second apply is refused', async () => {
      await repo.savePreview(preview('imp_p'), {}, NOW);
      const k = { uniqueIds: ['P1', 'P9'], emailsNormalized: [], usernamesNormalized: ['nine'] };
      const write: ParentImportWrite = {
        creates: [
          {
            account: importAccount('pa_9', { uniqueId: 'P9' }),
            profile: { username: 'Nine', usernameNormalized: 'nine', schoolSourcedIds: ['sch-1'] },
          },
        ],
        updates: [
          {
            parentId: 'pa_1',
            set: { givenName: 'Renamed', role: 'Guardian', lockedFields: ['givenName'] },
            profile: { schoolSourcedIds: ['sch-2'] },
          },
        ],
      };
      const seen: number[] = [];
      const out = await repo.applyParentImport({
        districtId: A,
        previewId: 'imp_p',
        now: NOW,
        keys: k,
        isCurrent: s => {
          seen.push(s.parents.length);
          return true;
        },
        write,
        result: { counts: { create: 1 } },
        change: importChange('imp_p', 'parents', true),
      });
      expect(seen).toEqual([1]);
      expect(out.kind).toBe('applied');
      if (out.kind !== 'applied') return;
      expect(out.writes).toBeGreaterThanOrEqual(4);
      expect(out.preview).toMatchObject({ status: 'applied', appliedAt: NOW.toISOString() });
      expect(await repo.getPreview(A, 'imp_p')).toMatchObject({
        status: 'applied',
        result: { counts: { create: 1 } },
      });
      const parents = await store.getParents(A);
      expect(parents.find(p => p.id === 'pa_9')).toMatchObject({
        origin: 'import',
        uniqueId: 'P9',
      });
      expect(parents.find(p => p.id === 'pa_1')).toMatchObject({
        givenName: 'Renamed',
        role: 'Guardian',
        lockedFields: ['givenName'],
        sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
      });
      expect(await repo.getProfiles(A)).toEqual([
        { districtId: A, parentId: 'pa_1', schoolSourcedIds: ['sch-2'] },
        {
          districtId: A,
          parentId: 'pa_9',
          username: 'Nine',
          usernameNormalized: 'nine',
          schoolSourcedIds: ['sch-1'],
        },
      ]);
      // one entry per account, in the apply's transaction, with cause and actor
      const entries = await importEntries();
      expect(entries).toHaveLength(2);
      for (const e of entries)
        expect(e).toMatchObject({
          districtId: A,
          cause: { kind: 'import', id: 'imp_p', trigger: 'parents', notify: true },
          actor: 'api:admin-token',
        });
      expect(entries[0]).toMatchObject({
        entity: 'parent',
        entityId: 'pa_9',
        action: 'create',
        parentId: 'pa_9',
        after: {
          uniqueId: 'P9',
          givenName: 'Parent pa_9',
          role: 'Parent',
          status: 'active',
          origin: 'import',
          username: 'Nine',
          schoolSourcedIds: ['sch-1'],
        },
      });
      expect(entries[0]?.before).toBeUndefined();
      expect(entries[1]).toMatchObject({
        entity: 'parent',
        entityId: 'pa_1',
        action: 'update',
        parentId: 'pa_1',
        before: {
          givenName: 'Parent pa_1',
          role: 'Parent',
          lockedFields: [],
          schoolSourcedIds: [],
        },
        after: {
          givenName: 'Renamed',
          role: 'Guardian',
          lockedFields: ['givenName'],
          schoolSourcedIds: ['sch-2'],
        },
      });
      // only the changed fields
      expect(Object.keys(entries[1]?.after ?? {}).sort()).toEqual([
        'givenName',
        'lockedFields',
        'role',
        'schoolSourcedIds',
      ]);
      // the username finds its account now
      const s = await repo.loadParentImportState(A, {
        uniqueIds: [],
        emailsNormalized: [],
        usernamesNormalized: ['nine'],
      });
      expect(s.parents.map(p => p.id)).toEqual(['pa_9']);

      const again = await repo.applyParentImport({
        districtId: A,
        previewId: 'imp_p',
        now: NOW,
        keys: k,
        isCurrent: () => true,
        write,
        result: {},
        change: importChange('imp_p', 'parents', true),
      });
      expect(again).toMatchObject({ kind: 'unavailable', preview: { status: 'applied' } });
      expect(await importEntries()).toHaveLength(2);
    });

    it('writes nothing when the state is stale, the preview expired, was superseded, or is of another district', async () => {
      await repo.savePreview(preview('imp_s'), {}, NOW);
      const write: ParentImportWrite = {
        creates: [
          {
            account: importAccount('pa_new', { uniqueId: 'PN' }),
            profile: { schoolSourcedIds: [] },
          },
        ],
        updates: [],
      };
      const req = {
        districtId: A,
        previewId: 'imp_s',
        now: NOW,
        keys: { uniqueIds: ['PN'], emailsNormalized: [], usernamesNormalized: [] },
        isCurrent: () => false,
        write,
        result: {},
        change: importChange('imp_s'),
      };
      const stale = await repo.applyParentImport(req);
      expect(stale.kind).toBe('stale');
      expect(await repo.getPreview(A, 'imp_s')).toMatchObject({ status: 'previewed' });
      expect(await repo.applyParentImport({ ...req, districtId: B })).toEqual({
        kind: 'unavailable',
        preview: undefined,
      });
      const expired = await repo.applyParentImport({ ...req, isCurrent: () => true, now: LATER });
      expect(expired.kind).toBe('unavailable');
      await repo.supersedePreview(A, 'imp_s', 'imp_t');
      const superseded = await repo.applyParentImport({ ...req, isCurrent: () => true });
      expect(superseded).toMatchObject({
        kind: 'unavailable',
        preview: { status: 'superseded', supersededBy: 'imp_t' },
      });
      expect((await store.getParents(A)).map(p => p.id)).toEqual(['pa_1', 'pa_2']);
      expect(await importEntries()).toEqual([]);
      expect(await importEntries(B)).toEqual([]);
    });

    it('a username taken meanwhile is a StoreConflictError and the preview is not applied', async () => {
      await repo.savePreview(preview('imp_u1'), {}, NOW);
      await repo.savePreview(preview('imp_u2'), {}, NOW);
      const create = (id: string, uid: string) => ({
        creates: [
          {
            account: importAccount(id, { uniqueId: uid }),
            profile: { username: 'same', usernameNormalized: 'same', schoolSourcedIds: [] },
          },
        ],
        updates: [],
      });
      const base = {
        districtId: A,
        now: NOW,
        keys: { uniqueIds: [], emailsNormalized: [], usernamesNormalized: [] },
        isCurrent: () => true,
        result: {},
        change: importChange('imp_u'),
      };
      const first = await repo.applyParentImport({
        ...base,
        previewId: 'imp_u1',
        write: create('pa_u1', 'U1'),
      });
      expect(first.kind).toBe('applied');
      await expect(
        repo.applyParentImport({ ...base, previewId: 'imp_u2', write: create('pa_u2', 'U2') }),
      ).rejects.toThrow(StoreConflictError);
      expect(await repo.getPreview(A, 'imp_u2')).toMatchObject({ status: 'previewed' });
      // the refused apply logged nothing (its transaction rolled back)
      expect((await importEntries()).map(e => e.entityId)).toEqual(['pa_u1']);
    });

    it('applies an association import: upserts import links, deactivates (never deletes) others', async () => {
      await repo.savePreview(preview('imp_a', { kind: 'associations' }), {}, NOW);
      const out = await repo.applyAssociationImport({
        districtId: A,
        previewId: 'imp_a',
        now: NOW,
        keys: { parentUniqueIds: ['P1'], studentUniqueIds: ['S1'] },
        isCurrent: s => s.links.length === 2,
        write: {
          upserts: [
            {
              districtId: A,
              parentId: 'pa_1',
              studentSourcedId: 's1',
              origin: 'import',
              status: 'active',
            },
          ],
          deactivations: [{ parentId: 'pa_2', studentSourcedId: 's1', origin: 'manual' }],
        },
        result: { counts: { add: 1, remove: 1 } },
        change: importChange('imp_a', 'associations'),
      });
      expect(out).toMatchObject({ kind: 'applied', writes: 2 });
      const links = (await store.getLinks(A)).map(l => [
        l.parentId,
        l.studentSourcedId,
        l.origin,
        l.status,
      ]);
      expect(links).toEqual([
        ['pa_1', 's1', 'import', 'active'],
        ['pa_1', 's1', 'sis', 'active'],
        ['pa_2', 's1', 'manual', 'inactive'],
      ]);
      expect(await store.getLinks(B)).toEqual([]);
      const entries = await importEntries();
      expect(entries.map(e => [e.entity, e.action, e.entityId, e.origin])).toEqual([
        ['link', 'create', linkRef('import', 'pa_1', 's1'), 'import'],
        ['link', 'deactivate', linkRef('manual', 'pa_2', 's1'), 'manual'],
      ]);
      expect(entries[0]).toMatchObject({
        parentId: 'pa_1',
        studentSourcedId: 's1',
        after: { status: 'active' },
        cause: { kind: 'import', id: 'imp_a', trigger: 'associations' },
        actor: 'api:admin-token',
      });
      expect(entries[1]).toMatchObject({
        parentId: 'pa_2',
        studentSourcedId: 's1',
        before: { status: 'active' },
        after: { status: 'inactive' },
      });

      // The same write again (another preview): nothing changes, nothing is logged.
      await repo.savePreview(preview('imp_a2', { kind: 'associations' }), {}, NOW);
      const again = await repo.applyAssociationImport({
        districtId: A,
        previewId: 'imp_a2',
        now: NOW,
        keys: { parentUniqueIds: ['P1'], studentUniqueIds: ['S1'] },
        isCurrent: () => true,
        write: {
          upserts: [
            {
              districtId: A,
              parentId: 'pa_1',
              studentSourcedId: 's1',
              origin: 'import',
              status: 'active',
            },
          ],
          deactivations: [{ parentId: 'pa_2', studentSourcedId: 's1', origin: 'manual' }],
        },
        result: {},
        change: importChange('imp_a2', 'associations'),
      });
      expect(again).toMatchObject({ kind: 'applied', writes: 0 });
      expect(await importEntries()).toHaveLength(2);
    });

    it('logs a reactivated import link and a reactivated account with before/after status', async () => {
      await repo.savePreview(preview('imp_r1', { kind: 'associations' }), {}, NOW);
      await repo.savePreview(preview('imp_r2', { kind: 'associations' }), {}, NOW);
      await repo.savePreview(preview('imp_r3'), {}, NOW);
      const assoc = (id: string, active: boolean) =>
        repo.applyAssociationImport({
          districtId: A,
          previewId: id,
          now: NOW,
          keys: { parentUniqueIds: ['P1'], studentUniqueIds: ['S1'] },
          isCurrent: () => true,
          write: active
            ? {
                upserts: [
                  {
                    districtId: A,
                    parentId: 'pa_1',
                    studentSourcedId: 's1',
                    origin: 'import',
                    status: 'active',
                  },
                ],
                deactivations: [],
              }
            : {
                upserts: [],
                deactivations: [{ parentId: 'pa_1', studentSourcedId: 's1', origin: 'import' }],
              },
          result: {},
          change: importChange(id, 'associations'),
        });
      await store.addLink({
        districtId: A,
        parentId: 'pa_1',
        studentSourcedId: 's1',
        origin: 'import',
        status: 'active',
      });
      expect(await assoc('imp_r1', false)).toMatchObject({ kind: 'applied', writes: 1 });
      expect(await assoc('imp_r2', true)).toMatchObject({ kind: 'applied', writes: 1 });
      const out = await repo.applyParentImport({
        districtId: A,
        previewId: 'imp_r3',
        now: NOW,
        keys: { uniqueIds: ['P2'], emailsNormalized: [], usernamesNormalized: [] },
        isCurrent: () => true,
        write: { creates: [], updates: [{ parentId: 'pa_2', set: { status: 'active' } }] },
        result: {},
        change: importChange('imp_r3'),
      });
      expect(out.kind).toBe('applied');
      expect(
        (await importEntries()).map(e => [e.entity, e.action, e.cause.id, e.before, e.after]),
      ).toEqual([
        ['link', 'deactivate', 'imp_r1', { status: 'active' }, { status: 'inactive' }],
        ['link', 'reactivate', 'imp_r2', { status: 'inactive' }, { status: 'active' }],
        ['parent', 'reactivate', 'imp_r3', { status: 'inactive' }, { status: 'active' }],
      ]);
    });

    it('an empty write applies and counts zero writes', async () => {
      await repo.savePreview(preview('imp_e'), {}, NOW);
      const out = await repo.applyParentImport({
        districtId: A,
        previewId: 'imp_e',
        now: NOW,
        keys: { uniqueIds: [], emailsNormalized: [], usernamesNormalized: [] },
        isCurrent: () => true,
        write: nothing,
        result: {},
        change: importChange('imp_e'),
      });
      expect(out).toMatchObject({ kind: 'applied', writes: 0 });
      expect(await importEntries()).toEqual([]);
    });
  });
}
