/** Data hooks of the console. */
import { useCallback, useEffect, useRef, useState } from 'react';
import type { z } from 'zod';
import { apiGet } from './api/client';

export interface ApiData<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * GET `path` (null: nothing yet) validated by `schema`; again every `pollMs` while
 * `pollMs` is set (live progress). Keeps the last data while reloading.
 */
export function useApi<T>(
  path: string | null,
  schema: z.ZodType<T>,
  opts: { pollMs?: number | undefined; refreshKey?: unknown } = {},
): ApiData<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const schemaRef = useRef(schema);
  const reload = useCallback(() => setTick(t => t + 1), []);

  useEffect(() => {
    if (path === null) return;
    let live = true;
    setLoading(true);
    apiGet(path, schemaRef.current).then(
      d => {
        if (!live) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [path, tick, opts.refreshKey]);

  useEffect(() => {
    if (!opts.pollMs || path === null) return;
    const t = window.setInterval(reload, opts.pollMs);
    return () => window.clearInterval(t);
  }, [opts.pollMs, path, reload]);

  return { data, error, loading, reload };
}
