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

/** How a district's fake PowerSchool is reached: its URL and OAuth client credentials. */
export interface PowerSchoolAccess {
  url: string;
  clientId: string;
  clientSecret: string;
}

/**
 * The configuration of district `id` reading the PowerSchool at `url` (bulk guardian reads,
 * students pages of `pageSize`), and the secrets it names (`<PREFIX>_ID` / `<PREFIX>_SECRET`).
 * Used where the fake server runs in another process (the fairness bench's SIS process).
 */
export function powerSchoolSiteConfig(
  id: string,
  access: PowerSchoolAccess,
  pageSize: number,
): { config: DistrictConfig; secrets: Record<string, string> } {
  const env = secretEnvPrefix(id);
  const config = DistrictConfig.parse({
    id,
    name: id,
    connector: {
      kind: 'powerschool',
      baseUrl: access.url,
      clientIdEnv: `${env}_ID`,
      clientSecretEnv: `${env}_SECRET`,
      pageSize,
      guardianReads: 'bulk',
      retries: 2,
      timeoutMs: 120000,
    },
  });
  return {
    config,
    secrets: { [`${env}_ID`]: access.clientId, [`${env}_SECRET`]: access.clientSecret },
  };
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
  return { fake, ...powerSchoolSiteConfig(id, fake, o.pageSize) };
}
