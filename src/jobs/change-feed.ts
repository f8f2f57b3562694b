/**
 * The change feed: a district's change log (src/models/changes/) read page by page from an
 * opaque cursor, by the API (`GET /districts/:id/changes`) and by webhook delivery
 * (src/jobs/webhooks.ts). Both show entries in the same public shape (`FeedEntry`).
 *
 * Cursors are `v1.<district>.<seq>.<check>`: the district, the sequence number of the last
 * entry the reader has seen, and 8 base64url characters of a SHA-256 over both. Clients must
 * treat them as opaque. The check is a checksum, not a secret: it catches a hand-edited or
 * truncated cursor; who may read a district is decided by the API token, and a cursor is only
 * accepted for the district it was issued for.
 */
import { createHash } from 'node:crypto';
import type { ChangeEntry, ChangeLogRepository } from '../models/changes/index.js';

/** An entry as the feed and webhooks show it: the stored entry without its `districtId`. */
export type FeedEntry = Omit<ChangeEntry, 'districtId'>;

/** The public shape of a stored entry (drops `districtId`, which the page names once). */
export function feedEntry(e: ChangeEntry): FeedEntry {
  const rest: Partial<ChangeEntry> = { ...e };
  delete rest.districtId;
  return rest as FeedEntry;
}

/** A cursor that cannot be used: not a cursor, altered, of another district, or ahead. */
export class ChangeCursorError extends Error {
  constructor(
    message: string,
    /** The district the cursor belongs to, when it could be read. */
    readonly cursorDistrictId?: string | undefined,
  ) {
    super(message);
    this.name = 'ChangeCursorError';
  }
}

const CURSOR = /^v1\.([a-z0-9][a-z0-9-]{0,62})\.(0|[1-9][0-9]{0,15})\.([A-Za-z0-9_-]{8})$/;

function check(districtId: string, seq: number): string {
  return createHash('sha256')
    .update(`guardian-sync change cursor v1\n${districtId}\n${seq}`)
    .digest('base64url')
    .slice(0, 8);
}

/**
 * The cursor positioned after entry `seq` of `districtId` (seq 0: before the first entry).
 * Throws `RangeError` for a seq that is not a safe non-negative integer.
 */
export function encodeChangeCursor(districtId: string, seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`bad sequence number ${seq}`);
  return `v1.${districtId}.${seq}.${check(districtId, seq)}`;
}

/**
 * Read a cursor. Returns its district and sequence number. Throws `ChangeCursorError` when it
 * is not a cursor of this API or was altered (checksum mismatch).
 */
export function decodeChangeCursor(cursor: string): { districtId: string; seq: number } {
  const m = CURSOR.exec(cursor);
  if (!m?.[1] || !m[2] || !m[3])
    throw new ChangeCursorError(
      'not a change-feed cursor; pass the `next` value of a previous page exactly as returned',
    );
  const districtId = m[1];
  const seq = Number(m[2]);
  if (!Number.isSafeInteger(seq) || check(districtId, seq) !== m[3])
    throw new ChangeCursorError(
      'the cursor was altered (its checksum does not match); pass the `next` value of a previous page exactly as returned',
      districtId,
    );
  return { districtId, seq };
}

/**
 * The sequence number a cursor of `districtId` stands for (0 when `cursor` is undefined: the
 * start of the log). Throws `ChangeCursorError` when it is unreadable, altered, or belongs to
 * another district (the message names that district).
 */
export function cursorSeqFor(districtId: string, cursor: string | undefined): number {
  if (cursor === undefined) return 0;
  const c = decodeChangeCursor(cursor);
  if (c.districtId !== districtId)
    throw new ChangeCursorError(
      `the cursor belongs to district ${c.districtId}, not ${districtId}`,
      c.districtId,
    );
  return c.seq;
}

/** One page of the feed. */
export interface FeedPage {
  districtId: string;
  /** Entries with `seq` greater than the cursor's, in sequence order (at most `limit`). */
  entries: FeedEntry[];
  /** Cursor after the last entry of this page (the request's own position when empty). */
  next: string;
  /** More entries can be read now from `next`. */
  hasMore: boolean;
  /** The district's newest sequence number (how far the log goes). */
  lastSeq: number;
}

/**
 * Read one page: up to `limit` entries after `afterSeq`. Throws `ChangeCursorError` when
 * `afterSeq` is beyond the district's last sequence number (cursors are only issued for
 * entries that exist, so the store was replaced or restored from an older backup).
 *
 * `hasMore` is never true forever: a page shorter than `limit` saw every entry that existed
 * when it was read, so it says true only when entries were written since. (Retention can
 * leave gaps in the numbering, including after the last kept entry; `next` never jumps over a
 * gap, so nothing written later is skipped.)
 */
export async function readFeedPage(
  repo: ChangeLogRepository,
  districtId: string,
  afterSeq: number,
  limit: number,
): Promise<FeedPage> {
  const before = await repo.lastSeq(districtId);
  if (afterSeq > before)
    throw new ChangeCursorError(
      `the cursor is at entry ${afterSeq} but district ${districtId}'s log ends at ${before}; the store was replaced or restored: start again without a cursor`,
      districtId,
    );
  const entries = await repo.list(districtId, { afterSeq, limit });
  const lastSeq = await repo.lastSeq(districtId);
  const end = entries.at(-1)?.seq ?? afterSeq;
  const hasMore = entries.length === limit ? end < lastSeq : lastSeq > Math.max(before, end);
  return {
    districtId,
    entries: entries.map(feedEntry),
    next: encodeChangeCursor(districtId, end),
    hasMore,
    lastSeq,
  };
}
