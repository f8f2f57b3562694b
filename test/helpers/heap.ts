/**
 * Honest heap measurements for memory-bound tests: a full garbage collection before each
 * reading, so `liveHeap()` is what is still reachable (not garbage waiting for the collector).
 * V8's `gc` is exposed at run time (`--expose-gc` set through `v8.setFlagsFromString`, the
 * function fetched from a fresh context), so the tests need no special Node flags.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes of JavaScript heap still reachable, after a full collection. */
export function liveHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Mebibytes, one decimal, for messages. */
export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
