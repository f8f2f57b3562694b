/**
 * Compare a store's active roster with the generator's ground truth, through the id maps of
 * any fake SIS (OneRoster GUIDs or prefixed ids, Skyward NameIds, PowerSchool DCIDs), like
 * `test/integration/sync.test.ts` does for PowerSchool.
 */
import { expectedRoster, type SyntheticDistrict } from '../../src/dev/district-generator.js';
import type { RosterStore } from '../../src/models/types.js';

/** Fake-SIS ids → generator ids. */
export interface IdMaps {
  dcidOf(studentSourcedId: string): number | undefined;
  contactIdOf(guardianSourcedId: string): number | undefined;
}

export const numericIds: IdMaps = {
  dcidOf: s => (/^\d+$/.test(s) ? Number(s) : undefined),
  contactIdOf: s => (/^\d+$/.test(s) ? Number(s) : undefined),
};

export interface RosterPicture {
  /** Active students' dcids, sorted. */
  students: number[];
  /** Persons (personKey) with an active sync-owned account, sorted. */
  persons: string[];
  /** Active `sis` links as `personKey>dcid`, sorted. */
  links: string[];
}

/** The store's active roster in ground-truth terms. Fails when one account mixes two people. */
export async function storeRoster(
  store: RosterStore,
  districtId: string,
  sis: SyntheticDistrict,
  ids: IdMaps,
): Promise<RosterPicture> {
  const personOf = new Map(sis.contacts.map(c => [c.contactId, c.personKey]));
  const accountPerson = new Map<string, string>();
  for (const p of await store.getParents(districtId)) {
    if (p.status !== 'active') continue;
    const persons = new Set(
      p.sources.map(s => personOf.get(ids.contactIdOf(s.sourcedId) ?? -1) ?? `?${s.sourcedId}`),
    );
    if (persons.size !== 1)
      throw new Error(`account ${p.id} mixes people: ${[...persons].join(', ')}`);
    accountPerson.set(p.id, [...persons][0] ?? '?');
  }
  const links = (await store.getLinks(districtId)).filter(
    l => l.status === 'active' && l.origin === 'sis',
  );
  return {
    students: (await store.getStudents(districtId))
      .filter(s => s.status === 'active')
      .map(s => ids.dcidOf(s.sourcedId) ?? -1)
      .sort((a, b) => a - b),
    persons: [...accountPerson.values()].sort(),
    links: links
      .map(
        l =>
          `${accountPerson.get(l.parentId) ?? `inactive:${l.parentId}`}>${ids.dcidOf(l.studentSourcedId) ?? -1}`,
      )
      .sort(),
  };
}

/** The ground truth under the data-access policy (what every fake lists as guardians). */
export function truthRoster(sis: SyntheticDistrict): RosterPicture {
  const t = expectedRoster(sis, { requireDataAccess: true, requireCustodial: false });
  return {
    students: t.students.map(s => s.dcid).sort((a, b) => a - b),
    persons: t.accounts.map(a => a.personKey).sort(),
    links: t.links.map(l => `${l.personKey}>${l.studentDcid}`).sort(),
  };
}
