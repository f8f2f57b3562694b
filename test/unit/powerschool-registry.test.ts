/**
 * Connector registry: secrets come from the environment variables the district file names.
 */
import { pino } from 'pino';
import { DistrictConfig } from '../../src/config/district.js';
import { connectorKinds, createConnector } from '../../src/connectors/index.js';
import { PowerSchoolConnector } from '../../src/connectors/powerschool/index.js';
import { ConfigError } from '../../src/errors.js';

const logger = pino({ level: 'silent' });
const district = DistrictConfig.parse({
  id: 'lincoln-usd',
  name: 'Lincoln USD',
  connector: {
    kind: 'powerschool',
    baseUrl: 'https://lincoln.powerschool.example',
    clientIdEnv: 'LINCOLN_PS_ID',
    clientSecretEnv: 'LINCOLN_PS_SECRET',
  },
});

describe('createConnector', () => {
  it('builds a PowerSchool connector with its capabilities', () => {
    const c = createConnector(
      district,
      { LINCOLN_PS_ID: 'id', LINCOLN_PS_SECRET: 'secret' },
      logger,
    );
    expect(c).toBeInstanceOf(PowerSchoolConnector);
    expect(c.kind).toBe('powerschool');
    expect(c.capabilities).toEqual({ guardianLinks: true, enrollments: false, delta: false });
    expect(c.stats()).toMatchObject({ httpRequests: 0, httpByStatus: {} });
    expect(connectorKinds).toContain('powerschool');
  });

  it.each([
    [{ LINCOLN_PS_SECRET: 'secret' }, 'LINCOLN_PS_ID'],
    [{ LINCOLN_PS_ID: 'id', LINCOLN_PS_SECRET: '' }, 'LINCOLN_PS_SECRET'],
  ])('a missing secret is a ConfigError naming the variable (%j)', (env, name) => {
    let err: unknown;
    try {
      createConnector(district, env, logger);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(name);
    expect((err as Error).message).toContain('lincoln-usd');
  });
});
