/**
 * Connector registry: builds the `SisConnector` a district's config asks for, resolving its
 * secrets from the environment (district files only name the variables).
 */
import type { Logger } from 'pino';
import { secretFromEnv, type DistrictConfig } from '../config/district.js';
import { ConfigError } from '../errors.js';
import { PowerSchoolConnector, type PowerSchoolConnectorOptions } from './powerschool/index.js';
import { AeriesConnector, type AeriesConnectorOptions } from './aeries/index.js';
import { createAeriesOneRosterConnector } from './aeries/oneroster.js';
import { ESchoolPlusConnector } from './eschoolplus/index.js';
import {
  createOneRosterFamilyConnector,
  type OneRosterFamilyOverrides,
} from './oneroster-family.js';
import type { ConnectorKind, SisConnector } from './types.js';

/** Connector kinds that have an implementation in this build. */
export const connectorKinds: readonly ConnectorKind[] = [
  'powerschool',
  'aeries',
  'eschoolplus',
  'infinite-campus',
  'skyward',
  'oneroster',
  'oneroster-csv',
];

/** Code-level extras for the connectors (tests: fast retry timing, fixed clock). */
export interface ConnectorOverrides {
  powerschool?: Pick<PowerSchoolConnectorOptions, 'client' | 'now'>;
  aeries?: Pick<AeriesConnectorOptions, 'client' | 'now'>;
  /** Infinite Campus, Skyward, OneRoster REST and CSV connectors. */
  oneroster?: OneRosterFamilyOverrides;
}

/**
 * Create the connector for `district.connector`. Secrets are read with `secretFromEnv`
 * (`ConfigError` naming the variable when unset). The logger gets `{districtId, connector}`
 * bindings. Throws `ConfigError` for a kind without an implementation.
 */
export function createConnector(
  district: DistrictConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  overrides: ConnectorOverrides = {},
): SisConnector {
  const cfg = district.connector;
  const log = logger.child({ districtId: district.id, connector: cfg.kind });
  switch (cfg.kind) {
    case 'powerschool':
      return new PowerSchoolConnector(cfg, {
        clientId: secretFromEnv(env, district.id, cfg.clientIdEnv),
        clientSecret: secretFromEnv(env, district.id, cfg.clientSecretEnv),
        logger: log,
        preRegisteredStudents: district.policies.preRegisteredStudents,
        ...overrides.powerschool,
      });
    case 'aeries':
      if (cfg.api === 'oneroster')
        return createAeriesOneRosterConnector(cfg, name => secretFromEnv(env, district.id, name), {
          logger: log,
          includeRelatives: district.policies.includeRelatives,
          ...overrides.oneroster,
        });
      return new AeriesConnector(cfg, {
        cert: secretFromEnv(env, district.id, cfg.certEnv ?? ''),
        logger: log,
        ...overrides.aeries,
      });
    case 'eschoolplus':
      return new ESchoolPlusConnector(cfg, {
        logger: log,
        ...(cfg.source.type === 'sftp'
          ? {
              sftp: {
                username: secretFromEnv(env, district.id, cfg.source.usernameEnv),
                password: cfg.source.passwordEnv
                  ? secretFromEnv(env, district.id, cfg.source.passwordEnv)
                  : undefined,
                privateKey: cfg.source.privateKeyEnv
                  ? secretFromEnv(env, district.id, cfg.source.privateKeyEnv)
                  : undefined,
              },
            }
          : {}),
      });
    case 'infinite-campus':
    case 'skyward':
    case 'oneroster':
    case 'oneroster-csv':
      return createOneRosterFamilyConnector(district, cfg, env, log, overrides.oneroster);
    default: {
      // Compile-time exhaustiveness: a new kind in ConnectorConfig must be registered here.
      const unhandled: never = cfg;
      const kind = String((unhandled as { kind?: unknown }).kind);
      throw new ConfigError(`district ${district.id}: no connector implementation for "${kind}"`);
    }
  }
}
