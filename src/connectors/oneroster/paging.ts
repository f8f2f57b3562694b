/**
 * OneRoster collection paging (sis-reference §1.3, §3.6): `limit`/`offset`, following
 * `Link rel="next"` when the server sends a `Link` header, else `X-Total-Count`, else
 * stopping on a short page. All three styles exist in the wild (Tools4ever NIM follows
 * `Link`, Bright uses `X-Total-Count`, Tools4ever HelloID stops on a short page).
 *
 * Defences against "incomplete pulls that look complete" (design.md):
 * - an empty page ends the collection (a last page whose `Link` points past the end);
 * - a page identical to the previous one is requested once more, then the pull fails with
 *   `IncompleteSnapshotError` (a server that ignores `offset` would loop forever);
 * - the caller counts unique ids against the reported total (`total`).
 */
import { IncompleteSnapshotError, SisPayloadError } from '../../errors.js';
import { parseLinkHeader, type RestClient } from './client.js';
import { collectionRecords } from './payloads.js';

export interface CollectionPage {
  /** Raw records of this page (parse each on its own). */
  records: unknown[];
  /** `X-Total-Count` of the collection, when the server sent one. */
  total?: number | undefined;
  /** 1-based page number (for reject ids of records without an id). */
  pageNo: number;
}

export interface PageOptions {
  /** Records per page (`limit`). */
  pageSize: number;
  /** Extra query parameters (`filter`). */
  params?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

function fingerprint(records: readonly unknown[]): string {
  const idOf = (r: unknown) =>
    typeof r === 'object' && r !== null && 'sourcedId' in r
      ? String(r.sourcedId)
      : JSON.stringify(r);
  return `${records.length}|${idOf(records[0])}|${idOf(records[records.length - 1])}`;
}

/**
 * Page through `path` (e.g. `/users`), whose JSON wraps records under `key` (`users`).
 * Throws what `RestClient.get` throws, `SisPayloadError` for a body that is not a
 * collection, `IncompleteSnapshotError` for a page that repeats twice.
 */
export async function* oneRosterPages(
  client: RestClient,
  path: string,
  key: string,
  opts: PageOptions,
): AsyncGenerator<CollectionPage> {
  const limit = opts.pageSize;
  let offset = 0;
  let nextUrl: string | undefined;
  let previous: string | undefined;
  let repeats = 0;
  for (let pageNo = 1; ;) {
    opts.signal?.throwIfAborted();
    const res =
      nextUrl !== undefined
        ? await client.get(nextUrl, undefined, opts.signal)
        : await client.get(path, { ...opts.params, limit, offset }, opts.signal);
    let records: unknown[];
    try {
      records = collectionRecords(res.body, key);
    } catch (err) {
      throw new SisPayloadError(`GET ${path} page ${pageNo}: ${(err as Error).message}`);
    }
    if (records.length === 0) return;
    const fp = fingerprint(records);
    if (fp === previous) {
      repeats++;
      if (repeats > 1) {
        throw new IncompleteSnapshotError(
          `GET ${path}: page ${pageNo} repeats the previous page (the server ignores offset or the next link)`,
        );
      }
      continue; // ask once more for the same page
    }
    repeats = 0;
    previous = fp;
    yield { records, total: res.totalCount, pageNo };
    pageNo++;
    offset += records.length;
    if (res.link !== undefined) {
      const next = parseLinkHeader(res.link).next;
      if (!next) return;
      nextUrl = new URL(next, res.url).href;
      continue;
    }
    nextUrl = undefined;
    if (res.totalCount !== undefined) {
      if (offset >= res.totalCount) return;
      continue;
    }
    if (records.length < limit) return;
  }
}
