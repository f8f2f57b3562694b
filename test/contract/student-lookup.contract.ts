/**
 * The student lookup contract (`src/models/imports/student-lookup*.ts`): every implementation
 * (SQLite, MongoDB) must pass it. Students are seeded and changed through the roster store
 * (`reconcileChunk`), as a sync would, so index maintenance is exercised for real.
 */
import { nameKey, studentLookup } from '../../src/models/imports/student-lookup.js';
import type { GuardianLink, RosterStore, StoredStudent } from '../../src/models/types.js';
import { seed, sisParent, student } from '../helpers/imports.js';

const A = 'lookup-a';
const B = 'lookup-b';

const named = (
  d: string,
  n: number,
  givenName: string,
  familyName: string,
  over: Partial<StoredStudent> = {},
) => student(d, n, { givenName, familyName, ...over });

export function runStudentLookupContract(
  name: string,
  open: () => Promise<RosterStore>,
  close: (store: RosterStore) => Promise<void>,
): void {
  describe(`student lookup contract: ${name}`, () => {
    let store: RosterStore;
    beforeAll(async () => {
      store = await open();
      await seed(store, A, {
        students: [
          named(A, 1, 'José', 'García'),
          named(A, 2, 'Zoë', "O'Brien"),
          named(A, 3, 'JOSEPH', 'Smith'),
          named(A, 4, 'Ana', 'Josefsson'),
          named(A, 5, 'Josie', 'Gone', { status: 'inactive' }),
          named(A, 6, 'Bob', 'Brown'),
        ],
        parents: [sisParent(A, 1)],
        links: [
          {
            districtId: A,
            parentId: 'pa_sis_1',
            studentSourcedId: 'stu-1',
            origin: 'sis',
            status: 'active',
          },
        ],
      });
      await seed(store, B, { students: [named(B, 1, 'José', 'Other')] });
    });
    afterAll(() => close(store));

    const search = async (q: string, d = A, limit = 20) =>
      (await (await studentLookup({ store })).searchActive(d, nameKey(q), limit)).map(
        s => s.sourcedId,
      );

    it('finds first- or last-name prefixes, ignoring case, accents and punctuation; active only; ordered', async () => {
      // Josefsson (family J…), García (José), Smith (JOSEPH); Josie is inactive
      expect(await search('jose')).toEqual(['stu-1', 'stu-4', 'stu-3']);
      expect(await search('JOSÉ')).toEqual(['stu-1', 'stu-4', 'stu-3']);
      expect(await search('garc')).toEqual(['stu-1']);
      expect(await search('obr')).toEqual(['stu-2']);
      expect(await search("O'Bri")).toEqual(['stu-2']);
      expect(await search('zoe')).toEqual(['stu-2']);
      expect(await search('rien')).toEqual([]); // prefix, not substring
      expect(await search('jose', A, 2)).toEqual(['stu-1', 'stu-4']);
      expect(await search('jose', B)).toEqual(['stu-1']);
      expect(await search('josie')).toEqual([]);
    });

    it('follows roster changes (new students, renamed students, status changes)', async () => {
      await search('a'); // the index exists before the changes
      await seed(store, A, { students: [named(A, 7, 'Émile', 'Zola')] });
      expect(await search('emi')).toEqual(['stu-7']);
      await store.reconcileChunk(
        A,
        {
          connector: 'powerschool',
          studentSourcedIds: ['stu-6'],
          guardianSourcedIds: [],
          guardianUniqueIds: [],
          emailsNormalized: [],
        },
        st => ({
          students: st.students.map(s => ({
            action: 'update' as const,
            record: { ...s, familyName: 'Ñúñez' },
          })),
          parentCreates: [],
          parentUpdates: [],
          links: [],
          linkRemovals: [],
          rejects: [],
          guardianAccounts: {},
        }),
        { dryRun: false },
      );
      expect(await search('nunez')).toEqual(['stu-6']);
      expect(await search('brown')).toEqual([]);
      await store.applyDeactivations(A, { studentSourcedIds: ['stu-7'], parentIds: [], links: [] });
      expect(await search('emi')).toEqual([]);
    });

    it('reads single students, parents and the links of a pair', async () => {
      const l = await studentLookup({ store });
      expect((await l.studentsByUniqueId(A, 'S00002')).map(s => s.familyName)).toEqual(["O'Brien"]);
      expect(await l.studentsByUniqueId(A, 'nope')).toEqual([]);
      expect((await l.studentBySourcedId(A, 'stu-5'))?.status).toBe('inactive');
      expect(await l.studentBySourcedId(B, 'stu-5')).toBeUndefined();
      expect(await l.parentById(A, 'pa_sis_1')).toMatchObject({
        id: 'pa_sis_1',
        uniqueId: 'P00001',
        status: 'active',
      });
      expect(await l.parentById(B, 'pa_sis_1')).toBeUndefined();
      await store.addLink({
        districtId: A,
        parentId: 'pa_sis_1',
        studentSourcedId: 'stu-1',
        origin: 'manual',
        status: 'inactive',
      });
      const links: GuardianLink[] = await l.linksBetween(A, 'pa_sis_1', 'stu-1');
      expect(links.map(x => `${x.origin}:${x.status}`)).toEqual(['manual:inactive', 'sis:active']);
      expect(await l.linksBetween(A, 'pa_sis_1', 'stu-2')).toEqual([]);
    });
  });
}
