/**
 * Issue 15 (fairness across districts) and issue 20 §4 (one writer per district), on the real
 * pipeline: BullMQ on real Redis, SQLite, real workers (apply concurrency 4).
 *
 * A large district is syncing (a long snapshot its pull streams chunk by chunk) when a small
 * district is triggered. Asserted, from the apply workers' own events (no timings):
 * - the small district's run succeeds while the large one is still running;
 * - while it ran, the large district applied only a few chunks: the small district's chunks
 *   did not queue behind the large district's backlog (before ADR 0011 the pull kept ~40–50
 *   chunks waiting in one FIFO queue, all applied before the small district's first one);
 * - no two chunks of one district were ever being applied at the same time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { createApp, type AppContext } from '../../src/app.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import type {
  ConnectorCapabilities,
  ConnectorKind,
  PullContext,
  PullStats,
  SisConnector,
} from '../../src/connectors/types.js';
import { CHUNK_WINDOW } from '../../src/jobs/chunk-turns.js';
import { cancelRun, triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { createLogger } from '../../src/logger.js';
import { Guardian, Student, type RosterChunk, type School } from '../../src/mapping/canonical.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { QueueName } from '../../src/workers/queues.js';
import { scriptedGuardian, scriptedStudent } from '../helpers/scripted-connector.js';

const PER_CHUNK = 5;

/** A district of `chunks` chunks of `PER_CHUNK` students, each with one guardian of its own. */
class GeneratedConnector implements SisConnector {
  readonly kind: ConnectorKind = 'oneroster';
  readonly capabilities: ConnectorCapabilities = {
    guardianLinks: true,
    enrollments: false,
    delta: false,
  };
  private requests = 0;
  constructor(
    private readonly tag: string,
    private readonly chunks: number,
  ) {}

  checkConnection(): Promise<void> {
    return Promise.resolve();
  }

  readSchools(): Promise<School[]> {
    return Promise.resolve([{ sourcedId: 'sch-1', name: 'Lincoln Elementary' }]);
  }

  // eslint-disable-next-line @typescript-eslint/require-await
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    for (let c = 0; c < this.chunks; c++) {
      ctx.signal.throwIfAborted();
      this.requests++;
      const students: Student[] = [];
      const guardians: Guardian[] = [];
      const relationships = [];
      for (let i = 0; i < PER_CHUNK; i++) {
        const id = `${this.tag}-S${c}-${i}`;
        students.push(Student.parse(scriptedStudent(id, `U-${id}`, `Kid ${i}`)));
        guardians.push(Guardian.parse(scriptedGuardian(`${this.tag}-G${c}-${i}`)));
        relationships.push({ guardianSourcedId: `${this.tag}-G${c}-${i}`, studentSourcedId: id });
      }
      yield { students, guardians, relationships, relationshipsSupplied: true };
    }
  }

  stats(): PullStats {
    return { httpRequests: this.requests, httpByStatus: {} };
  }
}

function district(id: string): DistrictConfig {
  return DistrictConfig.parse({
    id,
    name: id,
    connector: {
      kind: 'powerschool',
      baseUrl: 'http://127.0.0.1:9',
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
    },
  });
}

/** Resolve when `check()` holds; reject after `ms` naming `what` (a deadline, not a timing). */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 25));
  }
}

describe('fairness across districts, one writer per district (issues 15, 20 §4)', () => {
  const SMALL_CHUNKS = 6;
  let dir: string;
  let ctx: AppContext;
  let store: SqliteRosterStore;
  let workers: RunningWorkers;
  const large = `large-${randomUUID().slice(0, 6)}`;
  const small = `small-${randomUUID().slice(0, 6)}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-fair-'));
    store = new SqliteRosterStore(join(dir, 'store.db'));
    await store.init();
    const env = parseEnv({
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      QUEUE_PREFIX: `gsync-fair-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    });
    const connectors = new Map<string, SisConnector>([
      [large, new GeneratedConnector('L', 2000)],
      [small, new GeneratedConnector('s', SMALL_CHUNKS)],
    ]);
    ctx = await createApp({
      env,
      logger: createLogger(env.LOG_LEVEL),
      districts: [district(large), district(small)],
      secrets: { PS_ID: 'x', PS_SECRET: 'y' },
      store,
      connectorFactory: d => connectors.get(d.id),
    });
    workers = startWorkers(ctx, { concurrency: 4 });
  });
  afterAll(async () => {
    await workers?.close(5000);
    for (const q of Object.values(ctx?.queues ?? {})) await q.obliterate({ force: true });
    await ctx?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a small district completes while a large one is syncing, without waiting for its backlog', async () => {
    const apply = workers.workers.find(w => w.name === QueueName.apply);
    if (!apply) throw new Error('no apply worker');
    const districtOf = (job: Job) => (job.data as { districtId: string }).districtId;
    const handle = store.handle();
    if (handle.kind !== 'sqlite') throw new Error('expected SQLite');
    const stored = handle.db.prepare(
      'SELECT 1 FROM students WHERE district_id = ? AND sourced_id = ?',
    );
    const tagOf = new Map([
      [large, 'L'],
      [small, 's'],
    ]);
    // When a chunk starts, its district's previous chunk is already written (read at once,
    // synchronously, from the same database): chunks of a district never overlap.
    const startedEarly: string[] = [];
    let probing = true;
    const completed: string[] = [];
    apply.on('active', job => {
      const { districtId, chunkNo } = job.data as { districtId: string; chunkNo: number };
      if (chunkNo === 0 || !probing) return;
      const previous = `${tagOf.get(districtId) ?? '?'}-S${chunkNo - 1}-${PER_CHUNK - 1}`;
      if (stored.get(districtId, previous) === undefined)
        startedEarly.push(`${districtId}#${chunkNo}`);
    });
    apply.on('completed', job => completed.push(districtOf(job)));
    const largeDone = () => completed.filter(d => d === large).length;

    const { run: big } = await triggerSync(ctx, {
      districtId: large,
      dryRun: false,
      trigger: 'test',
    });
    // The large district is under way (and, before chunks took turns, had a backlog queued).
    await until(() => largeDone() >= 5, 120_000, 'the large district to apply 5 chunks');

    const atTrigger = largeDone();
    const { run: little } = await triggerSync(ctx, {
      districtId: small,
      dryRun: false,
      trigger: 'test',
    });
    const finished = await waitForRun(ctx, little.id, { timeoutMs: 120_000, intervalMs: 25 });
    const largeDuring = largeDone() - atTrigger;

    expect(finished.status).toBe('succeeded');
    expect(finished.counts.student?.create).toBe(SMALL_CHUNKS * PER_CHUNK);
    // still syncing: the small district did not wait for it to finish
    expect((await store.getRun(big.id))?.status).toBe('running');
    // The large district took turns with the small one (one chunk each, about), instead of
    // the small one's chunks waiting behind the large one's queued backlog.
    expect(largeDuring).toBeLessThanOrEqual(2 * SMALL_CHUNKS + 2 * CHUNK_WINDOW);
    // one writer per district at any time
    expect(startedEarly).toEqual([]);

    // The large run can be cancelled; its parked chunks drain (skipped), none stays in Redis.
    // (Skipped chunks write nothing, so the "previous chunk written" probe stops here.)
    probing = false;
    await cancelRun(ctx, big.id, 'test');
    await until(
      async () => {
        // chunks and pulls carry a priority (ADR 0016): runnable ones are 'prioritized'
        const c = await ctx.queues.apply.getJobCounts(
          'waiting',
          'prioritized',
          'active',
          'delayed',
        );
        const p = await ctx.queues.pull.getJobCounts('waiting', 'prioritized', 'active');
        return (
          (c.waiting ?? 0) +
            (c.prioritized ?? 0) +
            (c.active ?? 0) +
            (c.delayed ?? 0) +
            (p.prioritized ?? 0) +
            (p.active ?? 0) ===
          0
        );
      },
      120_000,
      'the large run’s chunks to drain',
    );
  });
});
