/**
 * A synthetic district served by its own fake PowerSchool, with the district configuration
 * that reads it (bulk guardian reads) and the secrets that configuration names. Used where
 * several districts sync side by side (the fairness bench, the priority tests).
 */
import { DistrictConfig } from '../config/district.js';
import { generateDistrict } from './district-generator.js';
import { startFakePowerSchool, type FakePowerSchool } from './powerschool-server.js';

/** A district id turned into the prefix of its secret variable names (`small-01` → `SMALL_01`). */
export const secretEnvPrefix = (districtId: string): string =>
  districtId.toUpperCase().replaceAll('-', '_');

/** One district: its fake server, its configuration and the secrets to pass to the app. */
export interface PowerSchoolSite {
  config: DistrictConfig;
  fake: FakePowerSchool;
  /** `<PREFIX>_ID` / `<PREFIX>_SECRET` → the fake's OAuth client credentials. */
  secrets: Record<string, string>;
}

/**
 * Generate a district of `students` students from `seed` and serve it from a new fake
 * PowerSchool on loopback (pages of `pageSize` records). Throws when the server cannot start.
 */
export async function startPowerSchoolSite(
  id: string,
  o: { students: number; seed: number; pageSize: number },
): Promise<PowerSchoolSite> {
  const fake = await startFakePowerSchool(
    generateDistrict({ seed: o.seed, students: o.students }),
    { maxPageSize: o.pageSize },
  );
  const env = secretEnvPrefix(id);
  const config = DistrictConfig.parse({
    id,
    name: id,
    connector: {
      kind: 'powerschool',
      baseUrl: fake.url,
      clientIdEnv: `${env}_ID`,
      clientSecretEnv: `${env}_SECRET`,
      pageSize: o.pageSize,
      guardianReads: 'bulk',
      retries: 2,
      timeoutMs: 120000,
    },
  });
  return {
    config,
    fake,
    secrets: { [`${env}_ID`]: fake.clientId, [`${env}_SECRET`]: fake.clientSecret },
  };
}
