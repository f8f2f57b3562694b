import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { createConnector } from '../src/connectors/index.js';
import { createLogger } from '../src/logger.js';
import { BenchChild } from './ipc.js';
import { benchSecrets, districtFor } from './common.js';
import type { SisStarted } from './sis-server.js';
const students = Number(process.argv[2] ?? 100000);
const sisChild = BenchChild.start('sis', './sis-server.ts', {
  nodeArgs: ['--max-old-space-size=4096'],
});
const sis = await sisChild.call<SisStarted>('start', { students, seed: 42, maxPageSize: 1000 });
const access = { url: sis.url, clientId: sis.clientId, clientSecret: sis.clientSecret };
const logger = createLogger('warn');
const session = new Session();
session.connect();
for (const prof of [false, true]) {
  const connector = createConnector(
    districtFor({ kind: 'powerschool' }, access, 1000),
    benchSecrets(access),
    logger,
  );
  if (prof) {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const ctx = { logger, signal: new AbortController().signal, reject: () => undefined };
  await connector.readSchools(ctx);
  let recs = 0;
  for await (const chunk of connector.readRoster(ctx))
    recs += chunk.students.length + chunk.guardians.length + chunk.relationships.length;
  const cpu = process.cpuUsage(c0);
  console.log(
    `read ${recs} records in ${(performance.now() - t0).toFixed(0)} ms, cpu ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms`,
  );
  if (prof) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync('/tmp/pull.cpuprofile', JSON.stringify(profile));
  }
}
await sisChild.stop();
process.exit(0);
