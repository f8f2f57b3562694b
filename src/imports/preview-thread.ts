/**
 * Worker-thread entry of an import preview (see src/imports/preview-runner.ts): opens its
 * own store connection, runs the preview, reports progress and the result to the parent.
 * Messages to the parent: `{ type: 'progress', rowsRead }`, then `{ type: 'done', preview }`
 * or `{ type: 'error', error: { name, message, ... } }`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { DistrictConfig } from '../config/district.js';
import { ConfigError } from '../errors.js';
import { openStore } from '../models/index.js';
import type { RosterStore } from '../models/types.js';
import { ImportFileError, ImportPreviewError } from './errors.js';
import type { PreviewTask } from './preview-runner.js';
import {
  ImportOptionsError,
  previewAssociationImport,
  previewParentImport,
  type ImportContext,
} from './service.js';

interface ThreadData {
  storeUrl: string;
  districts: DistrictConfig[];
  maxRows: number;
  task: PreviewTask;
}

/** A thrown value as a plain object the parent can turn back into the same error class. */
function serialize(err: unknown): Record<string, unknown> {
  if (err instanceof ImportFileError)
    return { name: err.name, message: err.message, fileName: err.fileName };
  if (err instanceof ImportPreviewError)
    return { name: err.name, message: err.message, previewId: err.previewId, problem: err.problem };
  if (err instanceof ImportOptionsError || err instanceof ConfigError)
    return { name: err.name, message: err.message, problems: err.problems };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('preview-thread must run as a worker thread');
  const data = workerData as ThreadData;
  let store: RosterStore | undefined;
  try {
    store = await openStore(data.storeUrl);
    const byId = new Map(data.districts.map(d => [d.id, d]));
    const ctx: ImportContext = {
      store,
      district(id) {
        const d = byId.get(id);
        if (!d) throw new ConfigError(`unknown district "${id}"`);
        return d;
      },
    };
    const fileName = data.task.input.file.name;
    const hooks = {
      onProgress(rowsRead: number) {
        port.postMessage({ type: 'progress', rowsRead });
        if (rowsRead > data.maxRows)
          throw new ImportFileError(
            fileName,
            `the file has more than ${data.maxRows} data rows, the preview limit (IMPORT_PREVIEW_MAX_ROWS); split it into several files`,
          );
      },
    };
    const preview =
      data.task.kind === 'parents'
        ? await previewParentImport(ctx, data.task.input, hooks)
        : await previewAssociationImport(ctx, data.task.input, hooks);
    port.postMessage({ type: 'done', preview });
  } catch (err) {
    port.postMessage({ type: 'error', error: serialize(err) });
  } finally {
    await store?.close();
  }
}

await main();
