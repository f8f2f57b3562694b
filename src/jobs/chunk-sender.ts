/**
 * Hands a pull's chunks to the apply queue off the reading thread (docs/decisions/0021).
 *
 * A pull reads its SIS on one thread, and in a no-change resync that thread is the run's tail:
 * whatever else it does adds to the run's wall time. Adding a chunk costs that thread the
 * chunk's base64 text, BullMQ's `JSON.stringify` of the job data, ioredis' UTF-8 copy and
 * byte counts, and the socket writes of ≈ 0.45 MB per 1,000 students. With the `thread`
 * sender (`SYNC_CHUNK_SENDER`, the default) the pull thread only packs the chunk (msgpackr
 * needs the chunk's objects) and transfers the bytes to a worker thread with its own Redis
 * connection and apply queue, which finishes the encoding and runs `enqueueChunkData` (turns,
 * parking, release: src/jobs/chunk-turns.ts) exactly as the pull thread would.
 *
 * Semantics are those of the inline add: the pull sends chunk n, reads on, and waits for chunk
 * n's add to be acknowledged (Redis replied) before it records anything for chunk n + 1, sends
 * it, or records its total, so Redis sees the same commands in the same causal order. A failed
 * add rejects `send`; a thread that dies rejects every send in flight and every later one. The
 * thread is shared by the pulls of one app context (started by the first, ended when the
 * context closes, replaced when it died); a kill -9 ends both threads with the process, as
 * before.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { AppContext } from '../app.js';
import { describeError } from '../errors.js';
import { enqueueChunk, type ChunkQueueContext } from './chunk-turns.js';
import { packChunk, type PackedChunk } from './chunk-codec.js';
import { chunkSize, type ApplyJobData, type ApplyPayload, type ChunkSize } from './payloads.js';

/** Adds one pull's chunks to the apply queue (`enqueueChunk` semantics). */
export interface ChunkSender {
  /**
   * Add chunk `payload.chunkNo` with BullMQ `options` (parked until its turn). Resolves once
   * Redis has the job; rejects with the add's error (or the thread's, when it died).
   */
  send(payload: ApplyPayload, options: Record<string, unknown>): Promise<void>;
  /** Stop the sender (the thread ends; sends still in flight reject). */
  close(): Promise<void>;
}

/** A chunk on its way to the sender thread. */
export interface ChunkMessage {
  seq: number;
  meta: Omit<ApplyJobData, 'size' | 'enc' | 'body'>;
  size: ChunkSize;
  packed: PackedChunk;
  options: Record<string, unknown>;
}

/** The sender thread's answer to one `ChunkMessage`. */
export type ChunkReply =
  { seq: number; ok: true } | { seq: number; ok: false; error: { name: string; message: string } };

/** What the sender thread needs to open its own connections. */
export interface ChunkSenderThreadData {
  redisUrl: string;
  prefix: string;
}

/** Adds on the calling thread (`SYNC_CHUNK_SENDER=inline`, and tests' own contexts). */
export function inlineChunkSender(ctx: ChunkQueueContext): ChunkSender {
  return {
    send: (payload, options) => enqueueChunk(ctx, payload, options),
    close: () => Promise.resolve(),
  };
}

/**
 * The process's sender threads, one per app context (keyed by its shared Redis client): the
 * thread and its Redis connections are started by the context's first pull and serve every
 * later pull of that context, so a pull does not pay a thread start (at 50,000 students under
 * tsx that was about a second of each run). A thread that died is replaced at the next pull.
 */
const sharedThreads = new WeakMap<object, ThreadChunkSender>();

/**
 * The sender `SYNC_CHUNK_SENDER` asks for (default: the context's shared worker thread).
 * Closing what it returns releases it for this pull; the thread itself ends with
 * `closeChunkSenders` (called by the app context's `close`).
 */
export function chunkSenderFor(ctx: AppContext): ChunkSender {
  if (ctx.env.SYNC_CHUNK_SENDER === 'inline') return inlineChunkSender(ctx);
  let thread = sharedThreads.get(ctx.redis);
  if (!thread || thread.dead()) {
    thread = threadChunkSender({
      redisUrl: ctx.env.REDIS_URL,
      prefix: ctx.prefix,
      logger: ctx.logger,
    });
    sharedThreads.set(ctx.redis, thread);
  }
  const shared = thread;
  return {
    send: (payload, options) => shared.send(payload, options),
    close: () => Promise.resolve(),
  };
}

/** End the shared sender thread of the app context whose Redis client is `redis`, if any. */
export async function closeChunkSenders(redis: object): Promise<void> {
  const thread = sharedThreads.get(redis);
  sharedThreads.delete(redis);
  await thread?.close();
}

/** A thread sender that says whether it can still send. */
export interface ThreadChunkSender extends ChunkSender {
  /** True once the thread died or was closed (every send rejects). */
  dead(): boolean;
}

/**
 * The thread's entry: the compiled `chunk-sender-thread.js` next to this file, or, when
 * running the TypeScript sources (tsx, jest), a bootstrap that registers tsx in the thread.
 */
function threadEntry(): { script: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts'))
    return { script: new URL('./chunk-sender-thread.js', import.meta.url), eval: false };
  const entry = new URL('./chunk-sender-thread.ts', import.meta.url).href;
  return {
    script: `import('tsx/esm/api').then(m => { m.register(); return import(${JSON.stringify(entry)}); });`,
    eval: true,
  };
}

/**
 * Adds from a worker thread of this process (see the module comment), connected to
 * `o.redisUrl` with queue prefix `o.prefix`; thread failures are logged on `o.logger`.
 */
export function threadChunkSender(
  o: ChunkSenderThreadData & { logger: Pick<Logger, 'warn'> },
): ThreadChunkSender {
  const entry = threadEntry();
  const data: ChunkSenderThreadData = { redisUrl: o.redisUrl, prefix: o.prefix };
  const worker = new Worker(entry.script, { eval: entry.eval, workerData: data });
  const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let dead: Error | undefined;
  let seq = 0;
  const failAll = (err: Error) => {
    dead ??= err;
    for (const w of waiting.values()) w.reject(dead);
    waiting.clear();
  };
  worker.on('message', (m: ChunkReply) => {
    const w = waiting.get(m.seq);
    if (!w) return;
    waiting.delete(m.seq);
    if (m.ok) w.resolve();
    else {
      const err = new Error(m.error.message);
      err.name = m.error.name;
      w.reject(err);
    }
  });
  worker.on('error', err => {
    o.logger.warn({ err: describeError(err) }, 'chunk sender thread failed');
    failAll(new Error(`chunk sender thread failed: ${describeError(err)}`));
  });
  worker.on('exit', code => failAll(new Error(`chunk sender thread exited (code ${code})`)));
  return {
    dead: () => dead !== undefined,
    send(payload, options) {
      if (dead) return Promise.reject(dead);
      const { chunk, ...meta } = payload;
      let packed: PackedChunk;
      try {
        // The part that needs the chunk's objects stays here; the bytes move (no copy).
        packed = packChunk(chunk);
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      const msg: ChunkMessage = { seq: ++seq, meta, size: chunkSize(chunk), packed, options };
      return new Promise<void>((resolve, reject) => {
        waiting.set(msg.seq, { resolve, reject });
        worker.postMessage(msg, packed.enc === 'json' ? [] : [packed.packed.buffer as ArrayBuffer]);
      });
    },
    async close() {
      failAll(new Error('chunk sender closed'));
      await worker.terminate();
    },
  };
}
