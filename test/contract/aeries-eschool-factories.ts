/**
 * Conformance factories for the Aeries (REST v5, fake server) and eSchoolPLUS (download-
 * definition files, link mode) connectors (see `connector.conformance.ts`).
 *
 * Aeries has no person id: its guardian sourcedIds are derived. `contactIdOf` maps a derived
 * id to a generator contact through the fake's rows (`personOfRow`, the ground truth); an id
 * whose rows belong to two different people maps to nothing, so a wrong merge fails the
 * suite.
 */
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AeriesConnectorConfig } from '../../src/config/aeries.js';
import { ESchoolPlusConnectorConfig } from '../../src/config/eschoolplus.js';
import { AeriesConnector } from '../../src/connectors/aeries/index.js';
import { AeContact } from '../../src/connectors/aeries/payloads.js';
import { ESchoolPlusConnector } from '../../src/connectors/eschoolplus/index.js';
import { aeriesStudentId } from '../../src/dev/aeries-adapter.js';
import { startFakeAeries } from '../../src/dev/aeries-server.js';
import { ESCHOOL_RELATION_CODES } from '../../src/dev/eschoolplus-adapter.js';
import { writeESchoolFiles } from '../../src/dev/eschoolplus-files.js';
import { contactRowKey, resolveAeriesIdentities } from '../../src/mapping/aeries.js';
import { conformanceLogger as logger, type ConformanceFactory } from './connector.conformance.js';

const FAST = { minBackoffMs: 5, maxBackoffMs: 20, maxRetryAfterMs: 3000 };

export const aeriesFactory: ConformanceFactory = {
  name: 'Aeries REST v5',
  // A static certificate: like signed requests, a refused one fails at once (no re-auth).
  auth: 'signed',
  capabilities: {
    guardianLinks: true,
    enrollments: false,
    delta: false,
    guardianLinksComplete: true,
  },
  async create(d, { pageSize, retries }) {
    const fake = await startFakeAeries(d);
    const connector = (cert: string) =>
      new AeriesConnector(
        AeriesConnectorConfig.parse({
          kind: 'aeries',
          baseUrl: fake.url,
          certEnv: 'AERIES_CERT',
          studentsPerRequest: pageSize,
          pageSize,
          retries,
          timeoutMs: 5000,
        }),
        { cert, logger, client: FAST },
      );
    const dcidOf = new Map(d.students.map(s => [String(aeriesStudentId(s)), s.id]));
    const firstContact = new Map<string, number>();
    for (const c of d.contacts)
      if (!firstContact.has(c.personKey)) firstContact.set(c.personKey, c.contactId);
    let personOfId: Map<string, Set<string>> | undefined;
    const contactIdOf = (sourcedId: string): number | undefined => {
      if (!personOfId) {
        const view = fake.view();
        const family = new Map(view.students.map(s => [String(s.StudentID), s.FamilyKey]));
        const rows = view.contacts.map(c => AeContact.parse(c));
        const ids = resolveAeriesIdentities(
          rows.map(row => ({ row, familyKey: family.get(row.StudentID) })),
        );
        personOfId = new Map();
        for (const row of rows) {
          const id = ids.get(contactRowKey(row))?.sourcedId;
          const person = view.personOfRow.get(contactRowKey(row));
          if (!id || !person) continue;
          const set = personOfId.get(id) ?? new Set<string>();
          set.add(person);
          personOfId.set(id, set);
        }
      }
      const persons = personOfId.get(sourcedId);
      if (!persons || persons.size !== 1) return undefined;
      return firstContact.get([...persons][0] ?? '');
    };
    return {
      connector: connector(fake.cert),
      dcidOf: id => dcidOf.get(id),
      contactIdOf,
      faults: fake.faults,
      withWrongSecret: () => connector('ffffffffffffffffffffffffffffffff'),
      close: () => fake.close(),
    };
  },
};

export const eSchoolPlusFactory: ConformanceFactory = {
  name: 'eSchoolPLUS files (link mode)',
  auth: 'none',
  capabilities: {
    guardianLinks: true,
    enrollments: false,
    delta: false,
    guardianLinksComplete: true,
  },
  async create(d, { pageSize }) {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-esp-conf-'));
    // Broken rows (line breaks, delimiters in comments) that the connector must repair.
    await writeESchoolFiles(d, { dir, lineBreaks: 4, delimitersInComments: 2 });
    const connector = new ESchoolPlusConnector(
      ESchoolPlusConnectorConfig.parse({
        kind: 'eschoolplus',
        source: { type: 'folder', path: dir },
        files: { studentContacts: { name: 'REG_STU_CONTACT.txt' } },
        format: { endOfRecordMarker: '#!#' },
        links: 'student-contact',
        relationCodes: ESCHOOL_RELATION_CODES,
        // The suite's ground truth keeps parked duplicates' links (they belong to the same person).
        contacts: { parkedPriority: null },
        pageSize,
      }),
      { logger },
    );
    const dcidOf = new Map(d.students.map(s => [String(s.local_id), s.id]));
    return {
      connector,
      dcidOf: id => dcidOf.get(id),
      contactIdOf: id => (/^\d+$/.test(id) ? Number(id) - 1_400_000 : undefined),
      interrupt: async () => {
        unlinkSync(join(dir, 'REG_CONTACT.txt'));
        await Promise.resolve();
      },
      close: async () => {
        rmSync(dir, { recursive: true, force: true });
        await Promise.resolve();
      },
    };
  },
};
