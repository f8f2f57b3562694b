/**
 * Worker-thread entry of the chunk sender (src/jobs/chunk-sender.ts): opens its own Redis
 * connection and apply queue, and for each `ChunkMessage` finishes the chunk's encoding and
 * adds it (`enqueueChunkData`), one message at a time in arrival order, answering each with a
 * `ChunkReply`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { describeError } from '../errors.js';
import { QUEUE_DEFAULT_JOB_OPTIONS, QueueName, redisOptionsFromUrl } from '../workers/queues.js';
import { finishChunk } from './chunk-codec.js';
import type { ChunkMessage, ChunkReply, ChunkSenderThreadData } from './chunk-sender.js';
import { enqueueChunkData, type ChunkQueueContext } from './chunk-turns.js';

function main(): void {
  const port = parentPort;
  if (!port) throw new Error('chunk-sender-thread must run as a worker thread');
  const data = workerData as ChunkSenderThreadData;
  const redis = new Redis(data.redisUrl, { maxRetriesPerRequest: 3 });
  // errors reach the pull through the failed add; the connection retries by itself
  redis.on('error', () => undefined);
  const apply = new Queue(QueueName.apply, {
    connection: redisOptionsFromUrl(data.redisUrl),
    prefix: data.prefix,
    defaultJobOptions: QUEUE_DEFAULT_JOB_OPTIONS,
  });
  apply.on('error', () => undefined);
  const ctx: ChunkQueueContext = { redis, prefix: data.prefix, queues: { apply } };
  // One add at a time, in order (the pull waits for each answer anyway).
  let last: Promise<void> = Promise.resolve();
  port.on('message', (m: ChunkMessage) => {
    last = last.then(async () => {
      let reply: ChunkReply;
      try {
        await enqueueChunkData(
          ctx,
          { ...m.meta, size: m.size, ...finishChunk(m.packed) },
          m.options,
        );
        reply = { seq: m.seq, ok: true };
      } catch (err) {
        const name = err instanceof Error ? err.name : 'Error';
        reply = { seq: m.seq, ok: false, error: { name, message: describeError(err) } };
      }
      port.postMessage(reply);
    });
  });
}

main();
