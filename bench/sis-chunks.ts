/**
 * Real roster chunks for codec benchmarks and tests (issue 15, ADR 0015): a generated district
 * (`generateDistrict`) served by the fake SIS of one kind (`startSis`, loopback HTTP or files)
 * and read by the product's own connector, exactly as a pull reads it. The fake SIS runs in
 * this process.
 */
import { generateDistrict } from '../src/dev/district-generator.js';
import { DistrictConfig } from '../src/config/district.js';
import { createConnector } from '../src/connectors/index.js';
import type { RosterChunk } from '../src/mapping/canonical.js';
import { createLogger } from '../src/logger.js';
import { startSis, type SisKind } from './sis-kinds.js';

/**
 * Every chunk the `kind` connector reads from a generated district of `students` students
 * (seed `seed`), `pageSize` students per chunk (default 1000). Rejects when the fake SIS
 * cannot start or the connector fails.
 */
export async function readSisChunks(
  kind: SisKind,
  o: { students: number; seed: number; pageSize?: number },
): Promise<RosterChunk[]> {
  const d = generateDistrict({ students: o.students, seed: o.seed });
  const sis = await startSis(kind, d, { pageSize: o.pageSize ?? 1000 });
  try {
    const district = DistrictConfig.parse({
      id: `codec-${kind}`,
      name: `codec ${kind}`,
      connector: sis.connector,
    });
    const connector = createConnector(district, sis.secrets, createLogger('silent'));
    const ctx = {
      logger: createLogger('silent'),
      signal: new AbortController().signal,
      reject: () => undefined,
    };
    await connector.readSchools(ctx);
    const chunks: RosterChunk[] = [];
    for await (const chunk of connector.readRoster(ctx)) chunks.push(chunk);
    return chunks;
  } finally {
    await sis.close();
  }
}
