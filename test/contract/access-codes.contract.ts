/**
 * Contract of the access-code repository and the sections repository: every adapter
 * (SQLite, MongoDB) must pass it. Roster data (students, schools, accounts, links) is
 * written through the roster store itself, as the sync would.
 */
import { formatAccessCode, generateAccessCodes } from '../../src/access-codes/code.js';
import {
  AccessCodeCollisionError,
  accessCodeRepository,
  UsernameTakenError,
  type AccessCodeRepository,
} from '../../src/models/access-codes/index.js';
import {
  changeLogRepository,
  codeRef,
  type ChangeContext,
  type ChangeEntry,
} from '../../src/models/changes/index.js';
import { sectionRepository, type SectionRepository } from '../../src/models/sections/index.js';
import type { RosterStore } from '../../src/models/types.js';
import { keys, link, parent, plan, student } from './store.contract.js';

const A = 'district-a';
const B = 'district-b';
const AT = '2026-01-02T03:04:05.000Z';
const ISSUE: ChangeContext = { cause: { kind: 'code-issue', id: 'run-1' }, actor: 'cli:tester' };
const RESET: ChangeContext = { cause: { kind: 'code-reset', id: 'r1' }, actor: 'api:admin' };

/** A generator handing out the given codes first, then fresh random ones. */
function scripted(...first: string[]): () => string {
  const queue = [...first];
  return () => queue.shift() ?? generateAccessCodes(1)[0] ?? '';
}
const fresh = () => generateAccessCodes(1)[0] ?? '';

export function runAccessCodesContract(
  name: string,
  open: () => Promise<RosterStore>,
  close: (store: RosterStore) => Promise<void>,
): void {
  describe(`access-code repository contract: ${name}`, () => {
    let store: RosterStore;
    let repo: AccessCodeRepository;

    beforeEach(async () => {
      store = await open();
      repo = await accessCodeRepository(store);
      // Roster: s1..s5 active in A (s4 linked by sis, s5 by an inactive link), s6 inactive,
      // t1 active in B. Accounts p1 (sis, active) and p2 (inactive).
      await store.upsertSchools(A, [
        { sourcedId: 'sch1', name: 'Élan Elementary' },
        { sourcedId: 'sch2', name: 'Hill High' },
      ]);
      const students = ['s1', 's2', 's3', 's4', 's5'].map(id => student(id));
      students.push(student('s6', { status: 'inactive' }));
      await store.reconcileChunk(
        A,
        keys({ studentSourcedIds: students.map(s => s.sourcedId) }),
        () =>
          plan({
            students: students.map(record => ({ action: 'create', record })),
            parentCreates: [
              parent('p1', { email: 'Ana@Example.org', emailNormalized: 'ana@example.org' }),
              parent('p2', { status: 'inactive' }),
            ],
            links: [
              { action: 'add', link: link('p1', 's4') },
              { action: 'add', link: link('p2', 's5', { status: 'inactive' }) },
            ],
          }),
        { dryRun: false },
      );
      await store.reconcileChunk(
        B,
        keys({ studentSourcedIds: ['t1'] }),
        () => plan({ students: [{ action: 'create', record: student('t1', {}, B) }] }),
        { dryRun: false },
      );
    });
    afterEach(async () => {
      await close(store);
    });

    it('init is idempotent', async () => {
      await repo.init();
      await repo.init();
      expect(await repo.countActiveCodes(A)).toBe(0);
    });

    it('lists students needing codes: active, without a code, and (unlinked) without an active link', async () => {
      const all = await repo.studentsNeedingCodes(A, { includeLinked: true, limit: 100 });
      expect(all.ids).toEqual(['s1', 's2', 's3', 's4', 's5']);
      expect(all.next).toBeUndefined();
      const unlinked = await repo.studentsNeedingCodes(A, { includeLinked: false, limit: 100 });
      expect(unlinked.ids).toEqual(['s1', 's2', 's3', 's5']); // s5's only link is inactive
      await repo.issueCodes(A, ['s2'], { generate: fresh, at: AT, change: ISSUE });
      expect(
        (await repo.studentsNeedingCodes(A, { includeLinked: false, limit: 100 })).ids,
      ).toEqual(['s1', 's3', 's5']);
    });

    it('pages with a keyset cursor (limit bounds the students scanned)', async () => {
      await repo.issueCodes(A, ['s2'], { generate: fresh, at: AT, change: ISSUE });
      const seen: string[] = [];
      let after: string | undefined;
      let pages = 0;
      do {
        const p = await repo.studentsNeedingCodes(A, { includeLinked: true, after, limit: 2 });
        seen.push(...p.ids);
        after = p.next;
        pages++;
      } while (after !== undefined && pages < 10);
      expect(seen).toEqual(['s1', 's3', 's4', 's5']);
      expect(pages).toBe(3);
    });

    it('issues one active code per student and skips students who hold one', async () => {
      const r1 = await repo.issueCodes(A, ['s1', 's2', 's1'], {
        generate: fresh,
        at: AT,
        change: ISSUE,
      });
      expect(r1.issued.map(i => i.studentSourcedId).sort()).toEqual(['s1', 's2']);
      expect(r1.skipped).toEqual([]);
      const r2 = await repo.issueCodes(A, ['s1', 's3'], { generate: fresh, at: AT, change: ISSUE });
      expect(r2.issued.map(i => i.studentSourcedId)).toEqual(['s3']);
      expect(r2.skipped).toEqual(['s1']);
      expect(await repo.countActiveCodes(A)).toBe(3);
      const code = r1.issued[0]?.code ?? '';
      expect(await repo.findCode(code)).toEqual({
        code,
        districtId: A,
        studentSourcedId: r1.issued[0]?.studentSourcedId,
        status: 'active',
        createdAt: AT,
      });
      expect(await repo.findCode('ZZZZZZZZZZZZ')).toBeUndefined();
    });

    it('retries a code collision with a new code — also across districts (system-wide unique)', async () => {
      const [taken = '', next = ''] = generateAccessCodes(2);
      await repo.issueCodes(A, ['s1'], { generate: scripted(taken), at: AT, change: ISSUE });
      const r = await repo.issueCodes(B, ['t1'], {
        generate: scripted(taken, next),
        at: AT,
        change: ISSUE,
      });
      expect(r.issued).toEqual([{ studentSourcedId: 't1', code: next }]);
      expect((await repo.findCode(taken))?.districtId).toBe(A);
      await expect(
        repo.issueCodes(A, ['s2'], {
          generate: () => taken,
          at: AT,
          maxAttempts: 3,
          change: ISSUE,
        }),
      ).rejects.toBeInstanceOf(AccessCodeCollisionError);
      expect(await repo.countActiveCodes(A)).toBe(1);
    });

    it('concurrent issuers never give a student two active codes', async () => {
      const ids = ['s1', 's2', 's3', 's4', 's5'];
      const results = await Promise.all(
        [1, 2, 3].map(() => repo.issueCodes(A, ids, { generate: fresh, at: AT, change: ISSUE })),
      );
      expect(results.reduce((n, r) => n + r.issued.length, 0)).toBe(5);
      expect(await repo.countActiveCodes(A)).toBe(5);
      for (const id of ids)
        expect((await repo.codesOfStudent(A, id)).filter(c => c.status === 'active')).toHaveLength(
          1,
        );
    });

    it('revokes (never deletes); the student may then get a new code; history newest first', async () => {
      const old = (await repo.issueCodes(A, ['s1'], { generate: fresh, at: AT, change: ISSUE }))
        .issued[0]?.code;
      expect(
        await repo.revokeCodes(A, ['s1', 's2'], {
          at: '2026-02-01T00:00:00.000Z',
          resetId: 'r1',
          change: RESET,
        }),
      ).toBe(1);
      expect(
        await repo.revokeCodes(A, ['s1'], {
          at: '2026-02-01T00:00:00.000Z',
          resetId: 'r1',
          change: RESET,
        }),
      ).toBe(0);
      expect(await repo.findCode(old ?? '')).toMatchObject({
        status: 'revoked',
        revokedAt: '2026-02-01T00:00:00.000Z',
        resetId: 'r1',
      });
      const renewed = await repo.issueCodes(A, ['s1'], {
        generate: fresh,
        at: '2026-02-01T00:00:01.000Z',
        change: RESET,
      });
      expect(renewed.issued).toHaveLength(1);
      const history = await repo.codesOfStudent(A, 's1');
      expect(history.map(h => h.status)).toEqual(['active', 'revoked']);
      expect(history[1]?.code).toBe(old);
    });

    /** The district's `code` entries, in log order. */
    const codeEntries = async (districtId = A): Promise<ChangeEntry[]> =>
      (await changeLogRepository(store)).list(districtId, { entity: 'code', limit: 1000 });

    it('logs one code entry per code issued: its ref, never its value; skips log nothing', async () => {
      const r1 = await repo.issueCodes(A, ['s1', 's2'], { generate: fresh, at: AT, change: ISSUE });
      await repo.issueCodes(A, ['s1'], { generate: fresh, at: AT, change: ISSUE }); // skipped
      const entries = await codeEntries();
      expect(entries).toHaveLength(2);
      const byStudent = new Map(entries.map(e => [e.studentSourcedId, e]));
      for (const { studentSourcedId, code } of r1.issued) {
        expect(byStudent.get(studentSourcedId)).toMatchObject({
          districtId: A,
          entity: 'code',
          entityId: codeRef(code),
          action: 'create',
          studentSourcedId,
          after: { status: 'active' },
          cause: { kind: 'code-issue', id: 'run-1' },
          actor: 'cli:tester',
        });
        expect(byStudent.get(studentSourcedId)?.parentId).toBeUndefined();
      }
      const text = JSON.stringify(entries);
      for (const { code } of r1.issued) {
        expect(text).not.toContain(code);
        expect(text).not.toContain(formatAccessCode(code));
      }
      expect(await codeEntries(B)).toEqual([]);
    });

    it('logs each revoked code (before/after status) with the reset as cause; nothing when none is active', async () => {
      const old = (await repo.issueCodes(A, ['s1'], { generate: fresh, at: AT, change: ISSUE }))
        .issued[0]?.code;
      expect(
        await repo.revokeCodes(A, ['s1', 's2'], { at: AT, resetId: 'r1', change: RESET }),
      ).toBe(1);
      expect(await repo.revokeCodes(A, ['s1'], { at: AT, resetId: 'r1', change: RESET })).toBe(0);
      const entries = await codeEntries();
      expect(entries.map(e => [e.action, e.studentSourcedId, e.entityId])).toEqual([
        ['create', 's1', codeRef(old ?? '')],
        ['deactivate', 's1', codeRef(old ?? '')],
      ]);
      expect(entries[1]).toMatchObject({
        before: { status: 'active' },
        after: { status: 'revoked' },
        cause: { kind: 'code-reset', id: 'r1' },
        actor: 'api:admin',
      });
      expect(JSON.stringify(entries)).not.toContain(old ?? '');
    });

    it('a batch that fails on collisions logs nothing; concurrent issuers log each code once', async () => {
      const [taken = ''] = generateAccessCodes(1);
      await repo.issueCodes(A, ['s1'], { generate: scripted(taken), at: AT, change: ISSUE });
      await expect(
        repo.issueCodes(A, ['s2'], {
          generate: () => taken,
          at: AT,
          maxAttempts: 2,
          change: ISSUE,
        }),
      ).rejects.toBeInstanceOf(AccessCodeCollisionError);
      expect((await codeEntries()).map(e => e.studentSourcedId)).toEqual(['s1']);

      const ids = ['s2', 's3', 's4', 's5'];
      await Promise.all(
        [1, 2, 3].map(() => repo.issueCodes(A, ids, { generate: fresh, at: AT, change: ISSUE })),
      );
      const entries = await codeEntries();
      expect(entries.map(e => e.studentSourcedId).sort()).toEqual(['s1', ...ids]);
      expect(entries.map(e => e.seq)).toEqual([1, 2, 3, 4, 5].map(n => entries[0]!.seq + n - 1));
      for (const e of entries) {
        const active = (await repo.codesOfStudent(A, e.studentSourcedId ?? '')).find(
          c => c.status === 'active',
        );
        expect(e.entityId).toBe(codeRef(active?.code ?? ''));
      }
    });

    it('walks the students holding active codes (keyset)', async () => {
      await repo.issueCodes(A, ['s3', 's1', 's5'], { generate: fresh, at: AT, change: ISSUE });
      const p1 = await repo.studentsWithActiveCodes(A, { limit: 2 });
      expect(p1.ids).toEqual(['s1', 's3']);
      const p2 = await repo.studentsWithActiveCodes(A, { after: p1.next, limit: 2 });
      expect(p2).toEqual({ ids: ['s5'], next: undefined });
    });

    it('gives export rows with the active code, schools and grade', async () => {
      const issued = await repo.issueCodes(A, ['s2'], { generate: fresh, at: AT, change: ISSUE });
      const rows = await repo.studentCodeRows(A, { limit: 3 });
      expect(rows.map(r => r.sourcedId)).toEqual(['s1', 's2', 's3']);
      expect(rows[1]).toEqual({
        sourcedId: 's2',
        uniqueId: 'U-s2',
        givenName: 'Given s2',
        familyName: 'Family',
        grade: '05',
        schoolSourcedIds: ['sch1'],
        status: 'active',
        code: issued.issued[0]?.code,
      });
      expect(rows[0]?.code).toBeUndefined();
      const next = await repo.studentCodeRows(A, { after: 's3', limit: 10 });
      expect(next.map(r => r.sourcedId)).toEqual(['s4', 's5']); // s6 is inactive
      const of = await repo.studentCodeRowsOf(A, ['s6', 's2', 'nope']);
      expect(of.map(r => [r.sourcedId, r.status]).sort()).toEqual([
        ['s2', 'active'],
        ['s6', 'inactive'],
      ]);
      expect(await repo.schoolNames(A)).toEqual(
        new Map([
          ['sch1', 'Élan Elementary'],
          ['sch2', 'Hill High'],
        ]),
      );
    });

    it('reads roster facts scoped by district', async () => {
      expect(await repo.studentStatus(A, 's6')).toBe('inactive');
      expect(await repo.studentStatus(A, 't1')).toBeUndefined();
      expect(await repo.studentStatus(B, 't1')).toBe('active');
      expect(await repo.studentIdsByUniqueId(A, ['U-s1', 'U-t1', 'x'])).toEqual(
        new Map([['U-s1', 's1']]),
      );
      expect(await repo.parentStatus(A, 'p2')).toBe('inactive');
      expect(await repo.parentStatus(B, 'p1')).toBeUndefined();
      expect(await repo.parentIdsByEmail(A, 'ana@example.org')).toEqual(['p1']);
      expect(await repo.hasActiveLink(A, 'p1', 's4')).toBe(true);
      expect(await repo.hasActiveLink(A, 'p2', 's5')).toBe(false);
    });

    it('records registrations: idempotent per account, a username belongs to one account', async () => {
      const acc = {
        districtId: A,
        parentId: 'p9',
        username: 'Ana.M',
        usernameNormalized: 'ana.m',
        createdAt: AT,
      };
      await repo.recordAccount(acc);
      await repo.recordAccount(acc);
      expect(await repo.accountByUsername(A, 'ana.m')).toEqual(acc);
      expect(await repo.accountByUsername(B, 'ana.m')).toBeUndefined();
      await expect(repo.recordAccount({ ...acc, parentId: 'p10' })).rejects.toBeInstanceOf(
        UsernameTakenError,
      );
      await expect(
        repo.recordAccount({ ...acc, usernameNormalized: 'other' }),
      ).rejects.toBeInstanceOf(UsernameTakenError);
      await repo.recordAccount({ districtId: A, parentId: 'p11', createdAt: AT }); // email-only
      await repo.recordAccount({ districtId: A, parentId: 'p12', createdAt: AT }); // email-only
      await repo.recordAccount({ ...acc, districtId: B }); // same username, other district
    });

    it('records redemptions once', async () => {
      const r = {
        districtId: A,
        code: 'ABCDEFGHJKMN',
        parentId: 'p1',
        studentSourcedId: 's1',
        kind: 'register' as const,
        at: AT,
      };
      await repo.recordRedemption(r);
      await repo.recordRedemption({ ...r, at: '2026-03-01T00:00:00.000Z' });
      await repo.recordRedemption({ ...r, parentId: 'p2', kind: 'add-child' });
      expect(await repo.listRedemptions(A)).toEqual([
        r,
        { ...r, parentId: 'p2', kind: 'add-child' },
      ]);
    });

    it('stores settings overrides per district (absent fields stay absent)', async () => {
      expect(await repo.getSettingsOverride(A)).toBeUndefined();
      await repo.putSettingsOverride({
        districtId: A,
        enabled: true,
        updatedAt: AT,
        updatedBy: 'cli:me',
      });
      expect(await repo.getSettingsOverride(A)).toEqual({
        districtId: A,
        enabled: true,
        updatedAt: AT,
        updatedBy: 'cli:me',
      });
      await repo.putSettingsOverride({
        districtId: A,
        enabled: false,
        defaultRole: 'Guardian',
        issueTo: 'all',
        updatedAt: AT,
        updatedBy: 'api:ops',
      });
      expect(await repo.getSettingsOverride(A)).toMatchObject({
        enabled: false,
        defaultRole: 'Guardian',
        issueTo: 'all',
      });
      await repo.putSettingsOverride({ districtId: A, updatedAt: AT, updatedBy: 'api:ops' });
      expect(await repo.getSettingsOverride(A)).toEqual({
        districtId: A,
        updatedAt: AT,
        updatedBy: 'api:ops',
      });
      expect(await repo.getSettingsOverride(B)).toBeUndefined();
    });

    it('records resets (who, when, how many), newest first', async () => {
      const r = {
        id: 'r1',
        districtId: A,
        actor: 'cli:me',
        at: AT,
        scope: 'list' as const,
        requested: 3,
        revoked: 2,
        issued: 2,
      };
      await repo.recordReset(r);
      await repo.recordReset(r); // idempotent
      await repo.recordReset({ ...r, id: 'r2', at: '2026-05-01T00:00:00.000Z', scope: 'district' });
      expect((await repo.listResets(A, 10)).map(x => x.id)).toEqual(['r2', 'r1']);
      expect(await repo.listResets(A, 1)).toHaveLength(1);
      expect((await repo.listResets(A, 10))[1]).toEqual(r);
      expect(await repo.listResets(B, 10)).toEqual([]);
    });
  });

  describe(`sections repository contract: ${name}`, () => {
    let store: RosterStore;
    let repo: SectionRepository;
    const sec = (id: string, title = `Course ${id}`) => ({
      sourcedId: id,
      title,
      schoolSourcedId: 'sch1',
    });
    const enr = (section: string, student: string) => ({
      sectionSourcedId: section,
      studentSourcedId: student,
    });

    beforeEach(async () => {
      store = await open();
      repo = await sectionRepository(store);
    });
    afterEach(async () => {
      await close(store);
    });

    it('writes a chunk once; the same chunk again writes nothing', async () => {
      const chunk = {
        studentSourcedIds: ['s1', 's2'],
        sections: [sec('c1', 'Français – 1'), sec('c2')],
        enrollments: [enr('c1', 's1'), enr('c1', 's2'), enr('c2', 's2')],
      };
      const before = repo.writeCount();
      expect(await repo.applyChunk(A, chunk, { dryRun: false })).toEqual({
        section: { create: 2 },
        enrollment: { add: 3 },
      });
      expect(repo.writeCount() - before).toBe(5);
      expect(await repo.applyChunk(A, chunk, { dryRun: false })).toEqual({});
      expect(repo.writeCount() - before).toBe(5);
      expect(await repo.sectionStudentIds(A, 'c1')).toEqual(['s1', 's2']);
      expect(await repo.getSection(A, 'c1')).toEqual({
        districtId: A,
        sourcedId: 'c1',
        title: 'Français – 1',
        schoolSourcedId: 'sch1',
      });
      expect(await repo.getSection(B, 'c1')).toBeUndefined();
      expect((await repo.listSections(A)).map(s => s.sourcedId)).toEqual(['c1', 'c2']);
    });

    it('a dry run counts and writes nothing', async () => {
      const before = repo.writeCount();
      const c = await repo.applyChunk(
        A,
        { studentSourcedIds: ['s1'], sections: [sec('c1')], enrollments: [enr('c1', 's1')] },
        { dryRun: true },
      );
      expect(c).toEqual({ section: { create: 1 }, enrollment: { add: 1 } });
      expect(repo.writeCount()).toBe(before);
      expect(await repo.listSections(A)).toEqual([]);
    });

    it('deactivates enrollments a chunk no longer lists (only its own students) and restores them', async () => {
      await repo.applyChunk(
        A,
        {
          studentSourcedIds: ['s1', 's2'],
          sections: [sec('c1'), sec('c2')],
          enrollments: [enr('c1', 's1'), enr('c2', 's1'), enr('c1', 's2')],
        },
        { dryRun: false },
      );
      expect(
        await repo.applyChunk(
          A,
          {
            studentSourcedIds: ['s1'],
            sections: [sec('c1', 'Renamed')],
            enrollments: [enr('c1', 's1')],
          },
          { dryRun: false },
        ),
      ).toEqual({ section: { update: 1 }, enrollment: { remove: 1 } });
      expect(await repo.sectionStudentIds(A, 'c2')).toEqual([]);
      expect(await repo.sectionStudentIds(A, 'c1')).toEqual(['s1', 's2']); // s2 untouched
      expect((await repo.listEnrollments(A)).find(e => e.sectionSourcedId === 'c2')?.status).toBe(
        'inactive',
      );
      // absent enrollments change nothing
      expect(await repo.applyChunk(A, { studentSourcedIds: ['s1'] }, { dryRun: false })).toEqual(
        {},
      );
      expect(
        await repo.applyChunk(
          A,
          { studentSourcedIds: ['s1'], enrollments: [enr('c1', 's1'), enr('c2', 's1')] },
          { dryRun: false },
        ),
      ).toEqual({ enrollment: { reactivate: 1 } });
      expect(await repo.sectionStudentIds(A, 'c2')).toEqual(['s1']);
    });
  });
}
