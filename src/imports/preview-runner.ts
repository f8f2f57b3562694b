/**
 * Import previews off the API's event loop (ADR 0008): each preview — reading, parsing and
 * planning the file — runs in a worker thread with its own store connection and a bounded
 * heap (`IMPORT_PREVIEW_MAX_HEAP_MB`), at most `IMPORT_PREVIEW_CONCURRENCY` at once (others
 * wait their turn). The API keeps answering other requests meanwhile, and the memory a
 * preview needs is given back when its thread ends. Progress (rows read) of every preview in
 * flight is kept here and shown by `GET /districts/:id/imports/preview-jobs`.
 *
 * A file with more than `IMPORT_PREVIEW_MAX_ROWS` data rows is refused (ImportFileError,
 * 422) while it is read. A store that cannot be opened twice (`sqlite::memory:`) runs the
 * preview inline instead (tests and demos only).
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { AppContext } from '../app.js';
import { ConfigError, describeError } from '../errors.js';
import { ImportFileError, ImportPreviewError } from './errors.js';
import {
  ImportOptionsError,
  previewAssociationImport,
  previewParentImport,
  type AssociationPreviewInput,
  type ImportPreview,
  type ParentPreviewInput,
} from './service.js';

/** What to preview: the service's input for that kind of import. */
export type PreviewTask =
  | { kind: 'parents'; input: ParentPreviewInput }
  | { kind: 'associations'; input: AssociationPreviewInput };

/** A preview in flight (or just finished), as `GET …/imports/preview-jobs` shows it. */
export interface PreviewJob {
  id: string;
  districtId: string;
  kind: PreviewTask['kind'];
  fileName: string;
  bytes: number;
  status: 'waiting' | 'running' | 'done' | 'failed';
  rowsRead: number;
  startedAt: string;
  finishedAt?: string;
  previewId?: string;
  error?: string;
}

/** Finished jobs stay listed this long (ms). */
const KEEP_FINISHED_MS = 10 * 60 * 1000;

const jobs = new Map<string, PreviewJob>();
let running = 0;
const waiting: (() => void)[] = [];

/** Previews of `districtId` in flight or finished in the last 10 minutes, newest first. */
export function listPreviewJobs(districtId: string): PreviewJob[] {
  const now = Date.now();
  for (const [id, j] of jobs)
    if (j.finishedAt && now - Date.parse(j.finishedAt) > KEEP_FINISHED_MS) jobs.delete(id);
  return [...jobs.values()]
    .filter(j => j.districtId === districtId)
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}

async function slot(limit: number): Promise<() => void> {
  while (running >= limit) await new Promise<void>(r => waiting.push(r));
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

/** The thread's serialized error as the service's error class (so the API maps it alike). */
function revive(e: Record<string, unknown>): Error {
  const message = typeof e.message === 'string' ? e.message : 'preview failed';
  const problems = Array.isArray(e.problems) ? (e.problems as string[]) : [];
  switch (e.name) {
    case 'ImportFileError': {
      const fileName = typeof e.fileName === 'string' ? e.fileName : '';
      const detail = message.startsWith(`${fileName}: `)
        ? message.slice(fileName.length + 2)
        : message;
      return new ImportFileError(fileName, detail);
    }
    case 'ImportPreviewError':
      return new ImportPreviewError(
        String(e.previewId),
        e.problem as ImportPreviewError['problem'],
        message.replace(/^import preview \S+: /, ''),
      );
    case 'ImportOptionsError':
      return new ImportOptionsError(message.split('\n')[0] ?? message, problems);
    case 'ConfigError':
      return new ConfigError(message.split('\n')[0] ?? message, problems);
    default: {
      const err = new Error(message);
      err.name = typeof e.name === 'string' ? e.name : 'Error';
      return err;
    }
  }
}

/**
 * The thread to start: the compiled `preview-thread.js` next to this file, or — when running
 * the TypeScript sources (tsx, jest) — a small bootstrap that registers tsx's loader in the
 * thread and imports `preview-thread.ts`.
 */
function threadEntry(): { script: URL | string; eval: boolean } {
  if (!import.meta.url.endsWith('.ts'))
    return { script: new URL('./preview-thread.js', import.meta.url), eval: false };
  const entry = new URL('./preview-thread.ts', import.meta.url).href;
  return {
    script: `import('tsx/esm/api').then(m => { m.register(); return import(${JSON.stringify(entry)}); });`,
    eval: true,
  };
}

/**
 * Run a preview in a worker thread; resolves with the preview the service stored. Throws the
 * service's errors (`ImportFileError`, `ImportOptionsError`, `ImportPreviewError`,
 * `ConfigError`) as the service would, and `ImportFileError` when the file has more rows
 * than `IMPORT_PREVIEW_MAX_ROWS` or the thread ran out of its heap.
 */
export async function runPreview(ctx: AppContext, task: PreviewTask): Promise<ImportPreview> {
  const job: PreviewJob = {
    id: `pj_${randomBytes(8).toString('hex')}`,
    districtId: task.input.districtId,
    kind: task.kind,
    fileName: task.input.file.name,
    bytes: task.input.file.data.length,
    status: 'waiting',
    rowsRead: 0,
    startedAt: new Date().toISOString(),
  };
  jobs.set(job.id, job);
  const release = await slot(ctx.env.IMPORT_PREVIEW_CONCURRENCY);
  job.status = 'running';
  try {
    const preview = /^sqlite::memory:?$/.test(ctx.env.storeUrl)
      ? await inline(ctx, task, job)
      : await inThread(ctx, task, job);
    job.status = 'done';
    job.previewId = preview.previewId;
    return preview;
  } catch (err) {
    job.status = 'failed';
    job.error = describeError(err);
    throw err;
  } finally {
    job.finishedAt = new Date().toISOString();
    release();
  }
}

async function inline(ctx: AppContext, task: PreviewTask, job: PreviewJob) {
  const hooks = { onProgress: (n: number) => void (job.rowsRead = n) };
  return task.kind === 'parents'
    ? previewParentImport(ctx, task.input, hooks)
    : previewAssociationImport(ctx, task.input, hooks);
}

function inThread(ctx: AppContext, task: PreviewTask, job: PreviewJob): Promise<ImportPreview> {
  const entry = threadEntry();
  const worker = new Worker(entry.script, {
    eval: entry.eval,
    workerData: {
      storeUrl: ctx.env.storeUrl,
      districts: [...ctx.districts.values()],
      maxRows: ctx.env.IMPORT_PREVIEW_MAX_ROWS,
      task,
    },
    resourceLimits: { maxOldGenerationSizeMb: ctx.env.IMPORT_PREVIEW_MAX_HEAP_MB },
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
    };
    worker.on(
      'message',
      (m: {
        type: string;
        rowsRead?: number;
        preview?: ImportPreview;
        error?: Record<string, unknown>;
      }) => {
        if (m.type === 'progress' && typeof m.rowsRead === 'number') job.rowsRead = m.rowsRead;
        else if (m.type === 'done' && m.preview) {
          const preview = m.preview;
          settle(() => resolve(preview));
        } else if (m.type === 'error') settle(() => reject(revive(m.error ?? {})));
      },
    );
    worker.on('error', (err: Error & { code?: string }) => {
      ctx.logger.warn({ err: describeError(err), previewJob: job.id }, 'preview thread failed');
      settle(() =>
        reject(
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? new ImportFileError(
                job.fileName,
                `the preview needed more than ${ctx.env.IMPORT_PREVIEW_MAX_HEAP_MB} MB (IMPORT_PREVIEW_MAX_HEAP_MB); split the file into several files`,
              )
            : err,
        ),
      );
    });
    worker.on('exit', code =>
      settle(() => reject(new Error(`preview thread exited with code ${code} before answering`))),
    );
  });
}
