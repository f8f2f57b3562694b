/** Bound a promise in time (readiness checks, metrics sources). */

/** Thrown by `withTimeout` when `ms` elapsed first. */
export class TimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Resolve or reject like `p`, or reject with `TimeoutError` after `ms` milliseconds. The
 * timer is cleared when `p` settles; `p` itself is not cancelled.
 */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
