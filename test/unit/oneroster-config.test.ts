/**
 * District-file schemas and the registry of the OneRoster-family connectors.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { DistrictConfig, parseDistrictConfig } from '../../src/config/district.js';
import { connectorKinds, createConnector } from '../../src/connectors/index.js';
import { OneRosterConnector } from '../../src/connectors/oneroster/index.js';
import { OneRosterCsvConnector } from '../../src/connectors/oneroster/csv-connector.js';
import { SkywardLmsConnector } from '../../src/connectors/skyward/index.js';
import { ConfigError } from '../../src/errors.js';

const logger = pino({ level: 'silent' });
const district = (connector: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  DistrictConfig.parse({ id: 'd', name: 'D', connector, ...extra });

const IC = {
  kind: 'infinite-campus',
  baseUrl:
    'https://x.infinitecampus.org/campus/api/oneroster/v1p2/app/ims/oneroster/rostering/v1p2',
  tokenUrl: 'https://x.infinitecampus.org/campus/oauth2/token?appName=app',
  clientIdEnv: 'IC_ID',
  clientSecretEnv: 'IC_SECRET',
};

describe('OneRoster-family config', () => {
  it('Infinite Campus: 1.2 by default, guardian lists not complete by default, token URL required for OAuth2', () => {
    const c = district(IC).connector;
    expect(c).toMatchObject({
      version: '1.2',
      guardianLinksComplete: false,
      credentials: 'form',
      sourcedIds: 'native',
    });
    expect(() =>
      parseDistrictConfig('ic.json', {
        id: 'd',
        name: 'D',
        connector: { ...IC, tokenUrl: undefined },
      }),
    ).toThrow(/ic\.json: connector\.tokenUrl: is required for OAuth2/);
    expect(() =>
      parseDistrictConfig('ic.json', { id: 'd', name: 'D', connector: { ...IC, oauth: 'oauth1' } }),
    ).toThrow(/OneRoster 1\.2 uses OAuth2/);
    // 1.1 without a token URL signs requests (OAuth 1.0a)
    expect(district({ ...IC, version: '1.1', tokenUrl: undefined }).connector).toMatchObject({
      version: '1.1',
    });
  });

  it('Skyward LMS needs the API key and secret variables; unknown keys are errors', () => {
    const sky = {
      kind: 'skyward',
      baseUrl: 'https://skyward.example/API',
      clientIdEnv: 'A',
      clientSecretEnv: 'B',
    };
    expect(() => parseDistrictConfig('s.json', { id: 'd', name: 'D', connector: sky })).toThrow(
      /usernameEnv: is required/,
    );
    expect(() =>
      parseDistrictConfig('s.json', {
        id: 'd',
        name: 'D',
        connector: { ...sky, api: 'oneroster', guardianReads: 'bulk' },
      }),
    ).toThrow(/guardianReads/);
  });

  it('Skyward LMS refuses deltas.enabled, naming the district and the setting (issue 15)', () => {
    const lms = {
      kind: 'skyward',
      baseUrl: 'https://skyward.example/API',
      clientIdEnv: 'A',
      clientSecretEnv: 'B',
      usernameEnv: 'C',
      passwordEnv: 'D',
    };
    const withDeltas = { ...lms, deltas: { enabled: true } };
    expect(() =>
      parseDistrictConfig('sky.json', { id: 'north-sky', name: 'N', connector: withDeltas }),
    ).toThrow(ConfigError);
    let lines: string[] = [];
    try {
      parseDistrictConfig('sky.json', { id: 'north-sky', name: 'N', connector: withDeltas });
    } catch (err) {
      lines = (err as ConfigError).problems;
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^sky\.json: connector\.deltas\.enabled: district "north-sky": deltas are not available with the Skyward LMS API/,
    );
    // deltas off (or absent) with the LMS API, and deltas with Skyward's OneRoster API, are fine
    expect(
      parseDistrictConfig('sky.json', {
        id: 'north-sky',
        name: 'N',
        connector: { ...lms, deltas: { enabled: false } },
      }).connector,
    ).toMatchObject({ api: 'lms' });
    expect(
      parseDistrictConfig('sky.json', {
        id: 'north-sky',
        name: 'N',
        connector: {
          kind: 'skyward',
          api: 'oneroster',
          baseUrl: 'https://s/ims/oneroster/v1p1',
          clientIdEnv: 'A',
          clientSecretEnv: 'B',
          deltas: { enabled: true },
        },
      }).connector,
    ).toMatchObject({ api: 'oneroster', deltas: { enabled: true } });
  });

  it('OneRoster CSV over SFTP needs a password or a key variable', () => {
    expect(() =>
      parseDistrictConfig('c.json', {
        id: 'd',
        name: 'D',
        connector: {
          kind: 'oneroster-csv',
          source: { type: 'sftp', host: 'h', usernameEnv: 'U', remotePath: '/x' },
        },
      }),
    ).toThrow(/passwordEnv: SFTP needs passwordEnv or privateKeyEnv/);
  });
});

describe('example district files', () => {
  it.each(['infinite-campus', 'skyward', 'oneroster-csv'])(
    'example-%s.example.json is valid',
    kind => {
      const path = `config/districts/example-${kind}.example.json`;
      const d = parseDistrictConfig(path, JSON.parse(readFileSync(path, 'utf8')));
      expect(d.connector.kind).toBe(kind);
    },
  );
});

describe('registry', () => {
  it('registers every OneRoster-family kind', () => {
    for (const k of ['infinite-campus', 'skyward', 'oneroster', 'oneroster-csv'] as const)
      expect(connectorKinds).toContain(k);
  });

  it('builds each connector with its capabilities; secrets come from the named variables', () => {
    const env = { IC_ID: 'i', IC_SECRET: 's', A: 'a', B: 'b', C: 'c', D: 'd' };
    const ic = createConnector(district(IC), env, logger);
    expect(ic).toBeInstanceOf(OneRosterConnector);
    expect(ic.kind).toBe('infinite-campus');
    expect(ic.capabilities).toEqual({
      guardianLinks: true,
      enrollments: false,
      delta: false,
      guardianLinksComplete: false,
    });
    const lms = createConnector(
      district({
        kind: 'skyward',
        baseUrl: 'https://s/API',
        clientIdEnv: 'A',
        clientSecretEnv: 'B',
        usernameEnv: 'C',
        passwordEnv: 'D',
      }),
      env,
      logger,
    );
    expect(lms).toBeInstanceOf(SkywardLmsConnector);
    const skyOr = createConnector(
      district({
        kind: 'skyward',
        api: 'oneroster',
        baseUrl: 'https://s/ims/oneroster/v1p1',
        clientIdEnv: 'A',
        clientSecretEnv: 'B',
      }),
      env,
      logger,
    );
    expect(skyOr).toBeInstanceOf(OneRosterConnector);
    expect(skyOr.kind).toBe('skyward');
    const generic = createConnector(
      district({
        kind: 'oneroster',
        version: '1.1',
        baseUrl: 'https://v/ims/oneroster/v1p1',
        auth: { type: 'oauth1', clientIdEnv: 'A', clientSecretEnv: 'B' },
        deltas: { enabled: true },
      }),
      env,
      logger,
    );
    expect(generic.capabilities.delta).toBe(true);
    const csv = createConnector(
      district({ kind: 'oneroster-csv', source: { type: 'folder', path: '/tmp/x' } }),
      {},
      logger,
    );
    expect(csv).toBeInstanceOf(OneRosterCsvConnector);
    let err: unknown;
    try {
      createConnector(district(IC), { IC_ID: 'i' }, logger);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('IC_SECRET');
  });
});
