/**
 * A slow, rate-limited SIS (issue 15): the fake servers' standing `limits` (latency and a
 * requests-per-second cap answered with 429 + Retry-After), against real loopback servers,
 * and the Skyward LMS connector's pacing under the cap.
 */
import { pino } from 'pino';
import { SkywardConnectorConfig } from '../../src/config/oneroster.js';
import { createSkywardConnector } from '../../src/connectors/skyward/index.js';
import { startFakeAeries } from '../../src/dev/aeries-server.js';
import { generateDistrict } from '../../src/dev/district-generator.js';
import { startFakeSkyward } from '../../src/dev/skyward-server.js';

const logger = pino({ level: 'silent' });

describe('fake SIS limits', () => {
  it('refuses requests over the cap with 429 and Retry-After; reset() keeps the limits', async () => {
    const d = generateDistrict({ seed: 5, students: 30 });
    // 1 request/s, a bucket of 2: ten requests sent at once cannot all fit.
    const fake = await startFakeAeries(d, { limits: { maxRequestsPerSecond: 1, burst: 2 } });
    try {
      const send = () =>
        fetch(`${fake.url}/api/v5/schools`, {
          headers: { 'AERIES-CERT': fake.cert, accept: 'application/json' },
        });
      const res = await Promise.all(Array.from({ length: 10 }, send));
      const refused = res.filter(r => r.status === 429);
      expect(res.filter(r => r.status === 200).length).toBeGreaterThanOrEqual(2);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      for (const r of refused) expect(r.headers.get('retry-after')).toBe('1');
      expect(fake.faults.cappedRequests).toBe(refused.length);
      expect(fake.stats.byStatus['429']).toBe(refused.length);
      fake.faults.reset();
      const again = await Promise.all(Array.from({ length: 10 }, send));
      expect(again.some(r => r.status === 429)).toBe(true);
      // `{}` removes them
      fake.faults.limits({});
      const free = await Promise.all(Array.from({ length: 10 }, send));
      expect(free.every(r => r.status === 200)).toBe(true);
    } finally {
      await fake.close();
    }
  });

  it('the Skyward LMS connector under a slow, capped server reads every student and guardian', async () => {
    const d = generateDistrict({ seed: 6, students: 40 });
    const fake = await startFakeSkyward(d, {
      limits: { latencyMs: 5, maxRequestsPerSecond: 50, burst: 5 },
    });
    try {
      const connector = createSkywardConnector(
        SkywardConnectorConfig.parse({
          kind: 'skyward',
          baseUrl: fake.baseUrl,
          clientIdEnv: 'A',
          clientSecretEnv: 'B',
          usernameEnv: 'C',
          passwordEnv: 'D',
          pageSize: 25,
          maxRequestsPerSecond: 50,
          guardianConcurrency: 8,
        }),
        {
          clientId: fake.clientId,
          clientSecret: fake.clientSecret,
          username: fake.username,
          password: fake.password,
          logger,
          includeRelatives: false,
        },
      );
      const ctx = { logger, signal: new AbortController().signal, reject: () => undefined };
      await connector.readSchools(ctx);
      let students = 0;
      for await (const chunk of connector.readRoster(ctx)) students += chunk.students.length;
      expect(students).toBe(d.students.filter(s => s.enroll_status === 'A').length);
      // A 429 (the client is paced at the cap, but a stalled event loop can bunch requests)
      // is waited out as Retry-After asks; each one the server sent is one it counted.
      expect(fake.faults.cappedRequests).toBe(fake.stats.byStatus['429'] ?? 0);
      const guardianCalls = fake.stats.byRoute['GET /API/v1/guardians'];
      if (guardianCalls !== undefined) expect(guardianCalls).toBeGreaterThanOrEqual(students);
      // one guardian request per student, besides token and pages
      expect(fake.stats.requests).toBeGreaterThanOrEqual(students);
    } finally {
      await fake.close();
    }
  });
});
