/**
 * Conformance factories: each wires one connector to its fake SIS for a district (see
 * `connector.conformance.ts`). Retry timing is ms-scale so failures are fast.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InfiniteCampusConnectorConfig,
  OneRosterCsvConnectorConfig,
  SkywardConnectorConfig,
} from '../../src/config/oneroster.js';
import { PowerSchoolConnectorConfig } from '../../src/config/district.js';
import { createInfiniteCampusConnector } from '../../src/connectors/infinite-campus/index.js';
import { OneRosterCsvConnector } from '../../src/connectors/oneroster/csv-connector.js';
import { PowerSchoolConnector } from '../../src/connectors/powerschool/index.js';
import { createSkywardConnector } from '../../src/connectors/skyward/index.js';
import type { SisConnector } from '../../src/connectors/types.js';
import { OneRosterDistrict } from '../../src/dev/oneroster-adapter.js';
import { oneRosterCsvFiles, writeOneRosterCsvZip } from '../../src/dev/oneroster-csv.js';
import { startFakeOneRoster } from '../../src/dev/oneroster-server.js';
import { startFakePowerSchool } from '../../src/dev/powerschool-server.js';
import { startFakeSkyward } from '../../src/dev/skyward-server.js';
import { conformanceLogger as logger, type ConformanceFactory } from './connector.conformance.js';

const FAST = { minBackoffMs: 5, maxBackoffMs: 20, maxRetryAfterMs: 3000 };
/** `tokenRequests` of a connector's stats (OneRoster-family connectors report it). */
function tokenRequestsOf(c: SisConnector): number {
  const s: object = c.stats();
  return 'tokenRequests' in s && typeof s.tokenRequests === 'number' ? s.tokenRequests : NaN;
}
const numeric = (s: string) => (/^\d+$/.test(s) ? Number(s) : undefined);

export const powerSchoolFactory: ConformanceFactory = {
  name: 'PowerSchool',
  auth: 'token',
  capabilities: {
    guardianLinks: true,
    enrollments: false,
    delta: false,
    guardianLinksComplete: true,
  },
  async create(d, { pageSize, retries }) {
    const fake = await startFakePowerSchool(d);
    const connector = (secret: string) =>
      new PowerSchoolConnector(
        PowerSchoolConnectorConfig.parse({
          kind: 'powerschool',
          baseUrl: fake.url,
          clientIdEnv: 'PS_ID',
          clientSecretEnv: 'PS_SECRET',
          pageSize,
          retries,
          timeoutMs: 5000,
        }),
        { clientId: fake.clientId, clientSecret: secret, logger, client: FAST },
      );
    const c = connector(fake.clientSecret);
    return {
      connector: c,
      dcidOf: numeric,
      contactIdOf: numeric,
      faults: fake.faults,
      tokenRequests: () => c.stats().tokenRequests,
      withWrongSecret: () => connector('wrong'),
      close: () => fake.close(),
    };
  },
};

function infiniteCampusFactory(version: '1.1' | '1.2'): ConformanceFactory {
  return {
    name: `Infinite Campus OneRoster ${version}`,
    auth: version === '1.2' ? 'token' : 'signed',
    capabilities: {
      guardianLinks: true,
      enrollments: version === '1.2',
      delta: version === '1.2',
      guardianLinksComplete: false,
    },
    async create(d, { pageSize, retries }) {
      const fake = await startFakeOneRoster(d, { version });
      const connector = (secret: string): SisConnector =>
        createInfiniteCampusConnector(
          InfiniteCampusConnectorConfig.parse({
            kind: 'infinite-campus',
            version,
            baseUrl: fake.baseUrl,
            ...(version === '1.2' ? { tokenUrl: fake.tokenUrl } : {}),
            clientIdEnv: 'IC_ID',
            clientSecretEnv: 'IC_SECRET',
            pageSize,
            retries,
            timeoutMs: 5000,
            ...(version === '1.2' ? { enrollments: true, deltas: { enabled: true } } : {}),
          }),
          {
            clientId: fake.clientId,
            clientSecret: secret,
            logger,
            includeRelatives: false,
            client: FAST,
          },
        );
      const c = connector(fake.clientSecret);
      const ids = fake.roster.ids;
      return {
        connector: c,
        dcidOf: id => ids.dcidOf(id),
        contactIdOf: id => ids.contactIdOf(id),
        faults: fake.faults,
        tokenRequests: () => tokenRequestsOf(c),
        withWrongSecret: () => connector('wrong'),
        close: () => fake.close(),
      };
    },
  };
}

export const infiniteCampus12Factory = infiniteCampusFactory('1.2');
export const infiniteCampus11Factory = infiniteCampusFactory('1.1');

export const skywardLmsFactory: ConformanceFactory = {
  name: 'Skyward SMS 2.0 LMS API',
  auth: 'token',
  capabilities: {
    guardianLinks: true,
    enrollments: true,
    delta: false,
    guardianLinksComplete: true,
  },
  async create(d, { pageSize, retries }) {
    const fake = await startFakeSkyward(d);
    const connector = (secret: string) =>
      createSkywardConnector(
        SkywardConnectorConfig.parse({
          kind: 'skyward',
          baseUrl: fake.baseUrl,
          clientIdEnv: 'SKY_ID',
          clientSecretEnv: 'SKY_SECRET',
          usernameEnv: 'SKY_KEY',
          passwordEnv: 'SKY_KEY_SECRET',
          pageSize,
          retries,
          timeoutMs: 5000,
          enrollments: true,
          maxRequestsPerSecond: 1000,
        }),
        {
          clientId: fake.clientId,
          clientSecret: secret,
          username: fake.username,
          password: fake.password,
          logger,
          includeRelatives: false,
          client: FAST,
        },
      );
    const c = connector(fake.clientSecret);
    return {
      connector: c,
      dcidOf: numeric,
      contactIdOf: numeric,
      faults: fake.faults,
      tokenRequests: () => tokenRequestsOf(c),
      withWrongSecret: () => connector('wrong'),
      close: () => fake.close(),
    };
  },
};

export const skywardOneRosterFactory: ConformanceFactory = {
  name: 'Skyward OneRoster API (1.1, OAuth2)',
  auth: 'token',
  capabilities: {
    guardianLinks: true,
    enrollments: false,
    delta: false,
    guardianLinksComplete: true,
  },
  async create(d, { pageSize, retries }) {
    const fake = await startFakeOneRoster(d, { version: '1.1', style: 'plain', auth: 'oauth2' });
    const connector = (secret: string) =>
      createSkywardConnector(
        SkywardConnectorConfig.parse({
          kind: 'skyward',
          api: 'oneroster',
          baseUrl: fake.baseUrl,
          tokenUrl: fake.tokenUrl,
          clientIdEnv: 'SKY_ID',
          clientSecretEnv: 'SKY_SECRET',
          pageSize,
          retries,
          timeoutMs: 5000,
        }),
        {
          clientId: fake.clientId,
          clientSecret: secret,
          logger,
          includeRelatives: false,
          client: FAST,
        },
      );
    const c = connector(fake.clientSecret);
    const ids = fake.roster.ids;
    return {
      connector: c,
      dcidOf: id => ids.dcidOf(id),
      contactIdOf: id => ids.contactIdOf(id),
      faults: fake.faults,
      tokenRequests: () => tokenRequestsOf(c),
      withWrongSecret: () => connector('wrong'),
      close: () => fake.close(),
    };
  },
};

export const oneRosterCsvFactory: ConformanceFactory = {
  name: 'OneRoster CSV (1.2 zip)',
  auth: 'none',
  capabilities: {
    guardianLinks: true,
    enrollments: true,
    delta: true,
    guardianLinksComplete: true,
  },
  async create(d, { pageSize }) {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-csv-'));
    const roster = new OneRosterDistrict(d, { version: '1.2' });
    const files = oneRosterCsvFiles(roster.view(), { mode: 'bulk' });
    const zip = join(dir, 'oneroster.zip');
    await writeOneRosterCsvZip(zip, files);
    const connector = new OneRosterCsvConnector(
      OneRosterCsvConnectorConfig.parse({
        kind: 'oneroster-csv',
        source: { type: 'zip', path: zip },
        pageSize,
        enrollments: true,
      }),
      { logger, includeRelatives: false },
    );
    return {
      connector,
      dcidOf: id => roster.ids.dcidOf(id),
      contactIdOf: id => roster.ids.contactIdOf(id),
      async interrupt() {
        // A file cut off inside a quoted cell, as a failed transfer leaves it.
        const users = files['users.csv'] ?? '';
        const cut = `${users.slice(0, Math.floor(users.length * 0.6))}\n"unterminated,`;
        await writeOneRosterCsvZip(zip, { ...files, 'users.csv': cut });
      },
      close: () => {
        rmSync(dir, { recursive: true, force: true });
        return Promise.resolve();
      },
    };
  },
};
