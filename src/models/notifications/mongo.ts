/**
 * `ActivationRepository` on the roster store's private mongoose connection. Its own
 * collection `activation_emails`, created with its missing indexes by `init()` (`ensureIndexes`, never drops).
 *
 * Atomicity without transactions: every state change is one `findOneAndUpdate` whose filter
 * carries the expected state (generation + status, or the token being unused and unexpired);
 * a caller that loses a race sees `null` and re-reads. The unique index on
 * `{districtId, parentId}` makes concurrent inserts of one account's record collide
 * (duplicate key → someone else inserted it → read theirs).
 */
import { Schema, type Connection, type Model } from 'mongoose';
import type { RecordStatus } from '../../mapping/canonical.js';
import { ensureIndexes } from '../mongo/indexes.js';
import { COLLECTIONS } from '../mongo/schemas.js';
import {
  ACTIVATION_STATUSES,
  abandonedReason,
  emptyActivationCounts,
  type ActivationChild,
  type ActivationParent,
  type ActivationPatch,
  type ActivationRecord,
  type ActivationRepository,
  type ActivationStatus,
  type BeginSendResult,
  type ConsumeTokenResult,
  type RequeueResult,
} from './types.js';

export const ACTIVATION_COLLECTION = 'activation_emails';
/** Held records released per transaction by `release`. */
export const RELEASE_BATCH = 1000;

export const activationSchema = new Schema<ActivationRecord>(
  {
    districtId: { type: String, required: true },
    parentId: { type: String, required: true },
    status: { type: String, enum: ACTIVATION_STATUSES, required: true },
    source: { type: String, enum: ['sync', 'import', 'resend'], required: true },
    generation: { type: Number, required: true },
    attempts: { type: Number, required: true, default: 0 },
    heldRunId: String,
    recipient: String,
    tokenHash: String,
    tokenExpiresAt: String,
    tokenUsedAt: String,
    queuedAt: { type: String, required: true },
    deferredUntil: String,
    sendingAt: String,
    sentAt: String,
    failedAt: String,
    reason: String,
    messageId: String,
    updatedAt: { type: String, required: true },
  },
  {
    versionKey: false,
    id: false,
    strict: 'throw',
    strictQuery: 'throw',
    autoIndex: false,
    autoCreate: false,
    collection: ACTIVATION_COLLECTION,
  },
);
// get / every transition / upsertPending: one activation record per account (exactly-once;
// concurrent inserts collide here)
activationSchema.index({ districtId: 1, parentId: 1 }, { unique: true, name: 'district_parent' });
// consumeToken: a token hash identifies one record. Partial: records without a token (not
// yet sent, or the token was invalidated by a resend) do not collide on "missing".
activationSchema.index(
  { tokenHash: 1 },
  { unique: true, name: 'token', partialFilterExpression: { tokenHash: { $exists: true } } },
);
// counts per status (and the deferred count, status queued + deferredUntil)
activationSchema.index({ districtId: 1, status: 1 }, { name: 'district_status' });
// release: the records a held run kept back
activationSchema.index(
  { districtId: 1, heldRunId: 1 },
  { name: 'district_heldRun', partialFilterExpression: { heldRunId: { $exists: true } } },
);

const codeOf = (err: unknown): unknown =>
  typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
function isDuplicateKey(err: unknown): boolean {
  const c = codeOf(err);
  if (c === 11000 || c === 11001) return true;
  const w =
    typeof err === 'object' && err !== null
      ? (err as { writeErrors?: unknown }).writeErrors
      : undefined;
  return Array.isArray(w) && w.some(e => codeOf(e) === 11000);
}

/** A lean document without `_id`, as the port's plain record. */
function clean(doc: (ActivationRecord & { _id?: unknown }) | null): ActivationRecord | undefined {
  if (!doc) return undefined;
  const { _id, ...rest } = doc;
  void _id;
  return rest;
}

/**
 * `$set` / `$unset` from a patch: `undefined` values are unset (never stored as null). Empty
 * operators are left out (MongoDB refuses `$unset: {}`).
 */
function toUpdate(patch: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const $set: Record<string, unknown> = {};
  const $unset: Record<string, ''> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) $unset[k] = '';
    else $set[k] = v;
  }
  const update: Record<string, Record<string, unknown>> = {};
  if (Object.keys($set).length) update.$set = $set;
  if (Object.keys($unset).length) update.$unset = $unset;
  return update;
}

const PATCH_KEYS = new Set<keyof ActivationPatch>([
  'status',
  'recipient',
  'tokenHash',
  'tokenExpiresAt',
  'deferredUntil',
  'sentAt',
  'failedAt',
  'reason',
  'messageId',
]);

/** Attempts at a compare-and-set loop before giving up (only under heavy contention). */
const MAX_RACES = 5;

/** `ActivationRepository` on the private mongoose connection of a `MongoRosterStore`. */
export class MongoActivationRepository implements ActivationRepository {
  private readonly model: Model<ActivationRecord>;

  constructor(private readonly conn: Connection) {
    this.model =
      (conn.models.ActivationEmail as Model<ActivationRecord> | undefined) ??
      conn.model<ActivationRecord>('ActivationEmail', activationSchema);
  }

  /** Create the collection and its missing indexes (`ensureIndexes`: never drops). */
  async init(): Promise<void> {
    await ensureIndexes(this.model as Model<unknown>);
  }

  private collection(name: string) {
    const db = this.conn.db;
    if (!db) throw new Error('MongoDB store is not connected (call init())');
    return db.collection(name);
  }

  async parents(districtId: string, parentIds: string[]): Promise<ActivationParent[]> {
    const out: ActivationParent[] = [];
    for (let i = 0; i < parentIds.length; i += 1000) {
      const docs = await this.collection(COLLECTIONS.parents)
        .find(
          { districtId, id: { $in: parentIds.slice(i, i + 1000) } },
          { projection: { _id: 0, id: 1, givenName: 1, familyName: 1, email: 1, status: 1 } },
        )
        .toArray();
      for (const d of docs)
        out.push({
          id: String(d.id),
          givenName: String(d.givenName ?? ''),
          familyName: String(d.familyName ?? ''),
          email: typeof d.email === 'string' ? d.email : undefined,
          status: d.status as RecordStatus,
        });
    }
    return out;
  }

  async children(districtId: string, parentId: string): Promise<ActivationChild[]> {
    const links = await this.collection(COLLECTIONS.links)
      .find(
        { districtId, parentId, status: 'active' },
        { projection: { _id: 0, studentSourcedId: 1 } },
      )
      .toArray();
    const ids = [...new Set(links.map(l => String(l.studentSourcedId)))];
    if (!ids.length) return [];
    const students = await this.collection(COLLECTIONS.students)
      .find(
        { districtId, sourcedId: { $in: ids }, status: 'active' },
        { projection: { _id: 0, sourcedId: 1, givenName: 1, familyName: 1 } },
      )
      .toArray();
    return students
      .map(s => ({
        sourcedId: String(s.sourcedId),
        givenName: String(s.givenName ?? ''),
        familyName: String(s.familyName ?? ''),
      }))
      .sort(
        (a, b) =>
          cmp(a.familyName, b.familyName) ||
          cmp(a.givenName, b.givenName) ||
          cmp(a.sourcedId, b.sourcedId),
      );
  }

  async get(districtId: string, parentId: string): Promise<ActivationRecord | undefined> {
    return clean(await this.model.findOne({ districtId, parentId }).lean<ActivationRecord>());
  }

  async upsertPending(records: ActivationRecord[]): Promise<ActivationRecord[]> {
    if (!records.length) return [];
    const ops = records.flatMap(r => {
      const doc = Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
      const ops: Parameters<Model<ActivationRecord>['bulkWrite']>[0] = [
        {
          updateOne: {
            filter: { districtId: r.districtId, parentId: r.parentId },
            update: { $setOnInsert: doc },
            upsert: true,
          },
        },
      ];
      if (r.status === 'queued' || r.status === 'held')
        ops.push({
          updateOne: {
            filter: { districtId: r.districtId, parentId: r.parentId, status: 'no-email' },
            update: toUpdate({
              status: r.status,
              source: r.source,
              heldRunId: r.heldRunId,
              queuedAt: r.queuedAt,
              updatedAt: r.updatedAt,
            }),
          },
        });
      return ops;
    });
    for (let attempt = 1; ; attempt++) {
      try {
        await this.model.bulkWrite(ops, { ordered: false, throwOnValidationError: true });
        break;
      } catch (err) {
        // Two writers inserted the same account's record at once; the loser re-runs the
        // (idempotent) batch, which now finds the winner's record.
        if (!isDuplicateKey(err) || attempt >= MAX_RACES) throw err;
      }
    }
    const stored = new Map<string, ActivationRecord>();
    const byDistrict = new Map<string, string[]>();
    for (const r of records) {
      const ids = byDistrict.get(r.districtId) ?? [];
      ids.push(r.parentId);
      byDistrict.set(r.districtId, ids);
    }
    for (const [districtId, ids] of byDistrict)
      for (let i = 0; i < ids.length; i += 1000) {
        const docs = await this.model
          .find({ districtId, parentId: { $in: ids.slice(i, i + 1000) } })
          .lean<ActivationRecord[]>();
        for (const d of docs) stored.set(`${d.districtId}\u0000${d.parentId}`, clean(d)!);
      }
    return records.map(r => {
      const s = stored.get(`${r.districtId}\u0000${r.parentId}`);
      if (!s) throw new Error(`activation record ${r.parentId} vanished`);
      return s;
    });
  }

  async heldRunIds(districtId: string): Promise<string[]> {
    const ids = (await this.model.distinct('heldRunId', {
      districtId,
      status: 'held',
      heldRunId: { $exists: true },
    })) as unknown[];
    return ids.filter((v): v is string => typeof v === 'string').sort();
  }

  /**
   * `held` records of `runId` → `queued`, `RELEASE_BATCH` records per transaction: read a
   * batch of held ids (index `district_heldRun`), one `updateMany`, read them back — three
   * round trips per batch instead of one per record. Inside the transaction the batch was
   * held in the snapshot and a concurrent change to one of its records is a write conflict
   * (the driver retries the batch), so what is read back is exactly what was released.
   */
  async release(districtId: string, runId: string, now: string): Promise<ActivationRecord[]> {
    const out: ActivationRecord[] = [];
    for (;;) {
      const released = await this.conn.transaction(async session => {
        const held = await this.model
          .find({ districtId, heldRunId: runId, status: 'held' }, { parentId: 1, _id: 0 })
          .limit(RELEASE_BATCH)
          .session(session)
          .lean<{ parentId: string }[]>();
        const ids = held.map(h => h.parentId);
        if (ids.length === 0) return [];
        await this.model
          .updateMany(
            { districtId, parentId: { $in: ids }, heldRunId: runId, status: 'held' },
            {
              $set: { status: 'queued', queuedAt: now, updatedAt: now },
              $unset: { heldRunId: '' },
            },
          )
          .session(session);
        return this.model
          .find({ districtId, parentId: { $in: ids } })
          .session(session)
          .lean<ActivationRecord[]>();
      });
      for (const d of released) {
        const r = clean(d);
        if (r) out.push(r);
      }
      if (released.length < RELEASE_BATCH) return out;
    }
  }

  async requeue(districtId: string, parentId: string, now: string): Promise<RequeueResult> {
    for (let attempt = 1; attempt <= MAX_RACES; attempt++) {
      const current = await this.get(districtId, parentId);
      if (!current) {
        const record: ActivationRecord = {
          districtId,
          parentId,
          status: 'queued',
          source: 'resend',
          generation: 0,
          attempts: 0,
          queuedAt: now,
          updatedAt: now,
        };
        try {
          await this.model.create(record);
          return { ok: true, record };
        } catch (err) {
          if (isDuplicateKey(err)) continue; // inserted meanwhile: decide on theirs
          throw err;
        }
      }
      if (current.status === 'sending') return { ok: false, reason: 'in-flight', record: current };
      if (current.tokenUsedAt) return { ok: false, reason: 'activated', record: current };
      const doc = await this.model
        .findOneAndUpdate(
          {
            districtId,
            parentId,
            generation: current.generation,
            status: current.status,
            tokenUsedAt: { $exists: false },
          },
          {
            $set: {
              status: 'queued',
              source: 'resend',
              attempts: 0,
              queuedAt: now,
              updatedAt: now,
            },
            $inc: { generation: 1 },
            $unset: {
              heldRunId: '',
              tokenHash: '',
              tokenExpiresAt: '',
              deferredUntil: '',
              sendingAt: '',
              sentAt: '',
              failedAt: '',
              reason: '',
              messageId: '',
            },
          },
          { returnDocument: 'after' },
        )
        .lean<ActivationRecord>();
      const record = clean(doc);
      if (record) return { ok: true, record };
    }
    throw new Error(`resend of ${parentId}: the record kept changing; try again`);
  }

  async transition(
    districtId: string,
    parentId: string,
    generation: number,
    from: readonly ActivationStatus[],
    patch: ActivationPatch,
  ): Promise<boolean> {
    for (const k of Object.keys(patch))
      if (!PATCH_KEYS.has(k as keyof ActivationPatch))
        throw new Error(`activation transition may not set ${k}`);
    const r = await this.model.updateOne(
      { districtId, parentId, generation, status: { $in: [...from] } },
      toUpdate({ ...patch, updatedAt: new Date().toISOString() }),
    );
    // matched, not modified: the filter carries the expected state, so a match is the
    // transition taking place even when the patch happens to change no value.
    return r.matchedCount === 1;
  }

  async beginSend(
    districtId: string,
    parentId: string,
    generation: number,
    claim: {
      tokenHash: string;
      tokenExpiresAt: string;
      recipient: string;
      now: string;
      leaseMs: number;
    },
  ): Promise<BeginSendResult> {
    for (let attempt = 1; attempt <= MAX_RACES; attempt++) {
      const claimed = await this.model
        .findOneAndUpdate(
          { districtId, parentId, generation, status: 'queued' },
          {
            $set: {
              status: 'sending',
              tokenHash: claim.tokenHash,
              tokenExpiresAt: claim.tokenExpiresAt,
              recipient: claim.recipient,
              sendingAt: claim.now,
              updatedAt: claim.now,
            },
            $inc: { attempts: 1 },
            $unset: { deferredUntil: '' },
          },
          { returnDocument: 'after' },
        )
        .lean<ActivationRecord>();
      if (claimed) return { kind: 'claimed', record: clean(claimed)! };
      const current = await this.get(districtId, parentId);
      if (!current || current.generation !== generation) return { kind: 'done', record: current };
      if (current.status === 'queued') continue; // moved back to queued meanwhile: claim again
      if (current.status !== 'sending') return { kind: 'done', record: current };
      const leaseEnds = Date.parse(current.sendingAt ?? current.updatedAt) + claim.leaseMs;
      if (leaseEnds > Date.parse(claim.now))
        return {
          kind: 'in-flight',
          record: current,
          leaseEndsAt: new Date(leaseEnds).toISOString(),
        };
      const abandoned = await this.model
        .findOneAndUpdate(
          {
            districtId,
            parentId,
            generation,
            status: 'sending',
            sendingAt: current.sendingAt ?? { $exists: false },
          },
          {
            $set: {
              status: 'maybe-sent',
              reason: abandonedReason(current.sendingAt),
              updatedAt: claim.now,
            },
          },
          { returnDocument: 'after' },
        )
        .lean<ActivationRecord>();
      if (abandoned) return { kind: 'abandoned', record: clean(abandoned)! };
    }
    throw new Error(`send of ${parentId}: the record kept changing; try again`);
  }

  async consumeToken(tokenHash: string, now: string): Promise<ConsumeTokenResult> {
    const used = await this.model
      .findOneAndUpdate(
        { tokenHash, tokenUsedAt: { $exists: false }, tokenExpiresAt: { $gt: now } },
        { $set: { tokenUsedAt: now, updatedAt: now } },
        { returnDocument: 'after' },
      )
      .lean<ActivationRecord>();
    if (used) return { ok: true, districtId: used.districtId, parentId: used.parentId };
    const current = await this.model.findOne({ tokenHash }).lean<ActivationRecord>();
    if (!current) return { ok: false, reason: 'unknown' };
    if (current.tokenUsedAt) return { ok: false, reason: 'used' };
    return { ok: false, reason: 'expired' };
  }

  async counts(
    districtId: string,
    now: string,
  ): Promise<Record<ActivationStatus | 'deferred', number>> {
    const out = emptyActivationCounts();
    const groups = await this.model.aggregate<{ _id: ActivationStatus; n: number }>([
      { $match: { districtId } },
      { $group: { _id: '$status', n: { $sum: 1 } } },
    ]);
    for (const g of groups) out[g._id] = g.n;
    out.deferred = await this.model.countDocuments({
      districtId,
      status: 'queued',
      deferredUntil: { $gt: now },
    });
    return out;
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
