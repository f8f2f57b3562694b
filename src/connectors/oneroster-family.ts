/**
 * Registry part of the OneRoster-family connectors (`infinite-campus`, `skyward`,
 * `oneroster`, `oneroster-csv`): resolves their secrets from the variables the district
 * file names and builds the connector. Called from `createConnector` (`./index.ts`).
 */
import type { Logger } from 'pino';
import { secretFromEnv, type DistrictConfig } from '../config/district.js';
import type {
  InfiniteCampusConnectorConfig,
  OneRosterConnectorConfig,
  OneRosterCsvConnectorConfig,
  SkywardConnectorConfig,
} from '../config/oneroster.js';
import { createInfiniteCampusConnector } from './infinite-campus/index.js';
import type { RestClientTuning } from './oneroster/client.js';
import { OneRosterCsvConnector } from './oneroster/csv-connector.js';
import { createOneRosterConnector } from './oneroster/factory.js';
import { createSkywardConnector } from './skyward/index.js';
import type { SisConnector } from './types.js';

/** Code-level extras (tests, benchmarks): HTTP timing knobs and a clock. */
export interface OneRosterFamilyOverrides {
  client?: RestClientTuning | undefined;
  now?: (() => Date) | undefined;
}

export type OneRosterFamilyConfig =
  | InfiniteCampusConnectorConfig
  | SkywardConnectorConfig
  | OneRosterConnectorConfig
  | OneRosterCsvConnectorConfig;

/**
 * Build the connector of a OneRoster-family config. Throws `ConfigError` naming the
 * environment variable when a secret is not set.
 */
export function createOneRosterFamilyConnector(
  district: DistrictConfig,
  cfg: OneRosterFamilyConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
  overrides: OneRosterFamilyOverrides = {},
): SisConnector {
  const secret = (name: string) => secretFromEnv(env, district.id, name);
  const includeRelatives = district.policies.includeRelatives;
  switch (cfg.kind) {
    case 'infinite-campus':
      return createInfiniteCampusConnector(cfg, {
        clientId: secret(cfg.clientIdEnv),
        clientSecret: secret(cfg.clientSecretEnv),
        logger,
        includeRelatives,
        ...overrides,
      });
    case 'skyward':
      return createSkywardConnector(cfg, {
        clientId: secret(cfg.clientIdEnv),
        clientSecret: secret(cfg.clientSecretEnv),
        username: cfg.api === 'lms' && cfg.usernameEnv ? secret(cfg.usernameEnv) : undefined,
        password: cfg.api === 'lms' && cfg.passwordEnv ? secret(cfg.passwordEnv) : undefined,
        logger,
        includeRelatives,
        ...overrides,
      });
    case 'oneroster':
      return createOneRosterConnector(cfg, {
        clientId: secret(cfg.auth.clientIdEnv),
        clientSecret: secret(cfg.auth.clientSecretEnv),
        logger,
        includeRelatives,
        ...overrides,
      });
    case 'oneroster-csv': {
      const src = cfg.source;
      return new OneRosterCsvConnector(cfg, {
        logger,
        includeRelatives,
        secrets:
          src.type === 'sftp'
            ? {
                sftpUsername: secret(src.usernameEnv),
                sftpPassword: src.passwordEnv ? secret(src.passwordEnv) : undefined,
                sftpPrivateKey: src.privateKeyEnv ? secret(src.privateKeyEnv) : undefined,
              }
            : undefined,
      });
    }
  }
}
