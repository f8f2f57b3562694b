/**
 * Issue 15 / ADR 0021: what adding a pull's chunks to the apply queue costs the pull's
 * reading (main) thread, inline (`SYNC_CHUNK_SENDER=inline`) and from the chunk-sender thread
 * (`thread`, the default).
 *
 * Real 1,000-student chunks (generated district → fake SIS → the product's connector,
 * `bench/sis-chunks.ts`) are added to an apply queue under a private Redis prefix, each as
 * chunk 0 of its own run (so each is added runnable at once, as in a no-change resync where
 * the pull is the slower side), one add in flight at a time like the pull. Per mode and
 * round: CPU time of the main thread alone (Linux `/proc/self/task/<pid>/stat`, clock ticks),
 * of the whole process (`process.cpuUsage`, the thread included), and wall time. The queue is
 * emptied between rounds.
 *
 * `npx tsx bench/chunk-sender.ts [--students 50000] [--rounds 5] [--seed 42] [--redis-url URL]`
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JOB_OPTIONS } from '../src/jobs/sync.js';
import {
  inlineChunkSender,
  threadChunkSender,
  type ChunkSender,
} from '../src/jobs/chunk-sender.js';
import { APPLY_PAYLOAD_VERSION, type ApplyPayload } from '../src/jobs/payloads.js';
import { QueueName, redisOptionsFromUrl } from '../src/workers/queues.js';
import { readSisChunks } from './sis-chunks.js';

const { values: args } = parseArgs({
  options: {
    students: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '5' },
    seed: { type: 'string', default: '42' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
  },
});

/** CPU seconds of this process's main thread (utime + stime of its task). */
function mainThreadCpuS(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const processCpuS = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function main(): Promise<void> {
  const redisUrl = args['redis-url'];
  const chunks = await readSisChunks('powerschool', {
    students: Number(args.students),
    seed: Number(args.seed),
  });
  const prefix = `bench-sender-${process.pid}`;
  const redis = new Redis(redisUrl);
  const apply = new Queue(QueueName.apply, { connection: redisOptionsFromUrl(redisUrl), prefix });
  const ctx = { redis, prefix, queues: { apply } };
  const rows: string[] = [];
  try {
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const mode of ['inline', 'thread'] as const) {
        const sender: ChunkSender =
          mode === 'inline'
            ? inlineChunkSender(ctx)
            : threadChunkSender({ redisUrl, prefix, logger: console });
        // the thread's start-up is not what is measured: one chunk first
        await sender.send(payload(chunks[0], `warm-${round}`), JOB_OPTIONS.apply);
        const t0 = { main: mainThreadCpuS(), proc: processCpuS(), wall: performance.now() };
        let adding: Promise<void> = Promise.resolve();
        for (const [i, chunk] of chunks.entries()) {
          await adding;
          adding = sender.send(payload(chunk, `${mode}-${round}-${i}`), JOB_OPTIONS.apply);
        }
        await adding;
        const main = mainThreadCpuS() - t0.main;
        const proc = processCpuS() - t0.proc;
        const wall = (performance.now() - t0.wall) / 1000;
        await sender.close();
        await apply.obliterate({ force: true });
        const per = (s: number) => ((s * 1000) / chunks.length).toFixed(2);
        rows.push(
          `| ${round + 1} | ${mode} | ${main.toFixed(2)} (${per(main)}) | ${proc.toFixed(2)} (${per(proc)}) | ${wall.toFixed(2)} |`,
        );
        console.error(rows[rows.length - 1]);
      }
    }
  } finally {
    await apply.obliterate({ force: true }).catch(() => undefined);
    await apply.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  }
  console.log(`${chunks.length} chunks of ≤ 1,000 students; CPU s (ms per chunk)\n`);
  console.log('| round | sender | main thread CPU s | process CPU s | wall s |');
  console.log('| ---: | --- | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
}

function payload(chunk: ApplyPayload['chunk'] | undefined, runId: string): ApplyPayload {
  if (!chunk) throw new Error('no chunk read');
  return {
    v: APPLY_PAYLOAD_VERSION,
    districtId: 'bench',
    runId,
    chunkNo: 0,
    generation: 1,
    chunk,
  };
}

await main();
