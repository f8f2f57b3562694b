/**
 * Connector registry: builds the `SisConnector` a district's config asks for, resolving its
 * secrets from the environment (district files only name the variables).
 */
import type { Logger } from 'pino';
import { secretFromEnv, type DistrictConfig } from '../config/district.js';
import { ConfigError } from '../errors.js';
import { PowerSchoolConnector, type PowerSchoolConnectorOptions } from './powerschool/index.js';
import type { ConnectorKind, SisConnector } from './types.js';

/** Connector kinds that have an implementation in this build. */
export const connectorKinds: readonly ConnectorKind[] = ['powerschool'];

/** Code-level extras for the connectors (tests: fast retry timing, fixed clock). */
export interface ConnectorOverrides {
  powerschool?: Pick<PowerSchoolConnectorOptions, 'client' | 'now'>;
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
        ...overrides.powerschool,
      });
    default: {
      // Compile-time exhaustiveness: a new kind in ConnectorConfig must be registered here.
      const unhandled: never = cfg.kind;
      const kind = String(unhandled);
      throw new ConfigError(`district ${district.id}: no connector implementation for "${kind}"`);
    }
  }
}
