/**
 * MongoDB imports repository checks that need no server (none runs here; the full contract
 * runs with MONGO_URL): its schemas declare the indexes the design relies on, and its
 * operations survive mongoose casting under `strict: 'throw'` / `strictQuery: 'throw'`.
 *
 * As in mongo-schemas.test.ts, operations go to models on a never-opened connection with
 * buffering off: a rejection saying "before initial connection" means casting passed, any
 * other error (strict mode, cast error) fails the test.
 */
import mongoose, { type Schema } from 'mongoose';
import {
  importLinkUpsertOp,
  linkDeactivateOp,
  parentImportUpdateOp,
  previewApplyOp,
  partSchema,
  previewSchema,
  profileSchema,
  profileWriteOp,
} from '../../src/models/imports/mongo.js';
import { linkSchema, parentSchema } from '../../src/models/mongo/schemas.js';
import { parentCreateOp } from '../../src/models/mongo/store.js';

const unique = expect.objectContaining({ unique: true }) as unknown;
const ttl = expect.objectContaining({ expireAfterSeconds: 0 }) as unknown;

function indexes(schema: Schema) {
  return schema.indexes().map(([fields, options]) => ({ fields, options }));
}

describe('imports schemas', () => {
  it('profiles: one per account; one username per district (partial: accounts without one do not collide)', () => {
    expect(indexes(profileSchema)).toEqual([
      {
        fields: { districtId: 1, parentId: 1 },
        options: unique,
      },
      {
        fields: { districtId: 1, usernameNormalized: 1 },
        options: expect.objectContaining({
          unique: true,
          partialFilterExpression: { usernameNormalized: { $type: 'string' } },
        }) as unknown,
      },
    ]);
  });

  it('previews and their parts expire (TTL) and parts are unique per (preview, part, seq)', () => {
    expect(indexes(previewSchema)).toEqual(
      expect.arrayContaining([
        { fields: { id: 1 }, options: unique },
        { fields: { expiresAt: 1 }, options: ttl },
      ]),
    );
    expect(indexes(partSchema)).toEqual(
      expect.arrayContaining([
        {
          fields: { previewId: 1, part: 1, seq: 1 },
          options: unique,
        },
        { fields: { expiresAt: 1 }, options: ttl },
      ]),
    );
  });
});

describe('imports operations cast cleanly', () => {
  const conn = mongoose.createConnection();
  const offline = <T>(name: string, schema: Schema<T>) => {
    const s = schema.clone();
    s.set('bufferCommands', false);
    return conn.model<T>(name, s);
  };
  const Parents = offline('OfflineImportParent', parentSchema);
  const Links = offline('OfflineImportLink', linkSchema);
  const Profiles = offline('OfflineProfile', profileSchema);
  const Previews = offline('OfflinePreview', previewSchema);
  const Parts = offline('OfflinePart', partSchema);
  const notConnected = /before initial connection/;
  afterAll(() => conn.close());

  it('account creates and updates (role, uniqueId, locked fields, reactivation)', async () => {
    const update = parentImportUpdateOp('d1', 'pa_1', {
      givenName: 'A',
      role: 'Guardian',
      uniqueId: 'P1',
      status: 'active',
      email: 'a@b.test',
      emailNormalized: 'a@b.test',
      lockedFields: ['givenName'],
    });
    expect(parentImportUpdateOp('d1', 'pa_1', {})).toBeUndefined();
    if (!update) throw new Error('expected an op');
    const create = parentCreateOp('d1', {
      districtId: 'd1',
      id: 'pa_2',
      uniqueId: 'P2',
      givenName: 'B',
      familyName: 'C',
      role: 'Parent',
      status: 'active',
      origin: 'import',
      sources: [],
      lockedFields: [],
    });
    await expect(Parents.bulkWrite([create, update], { ordered: true })).rejects.toThrow(
      notConnected,
    );
  });

  it('profile upserts with and without a username', async () => {
    const ops = [
      profileWriteOp('d1', 'pa_1', {
        username: 'Ann',
        usernameNormalized: 'ann',
        schoolSourcedIds: ['b', 'a'],
      }),
      profileWriteOp('d1', 'pa_2', { schoolSourcedIds: [] }),
    ];
    expect(ops[0]).toEqual({
      updateOne: {
        filter: { districtId: 'd1', parentId: 'pa_1' },
        update: {
          $set: { schoolSourcedIds: ['a', 'b'], username: 'Ann', usernameNormalized: 'ann' },
        },
        upsert: true,
      },
    });
    await expect(Profiles.bulkWrite(ops, { ordered: true })).rejects.toThrow(notConnected);
  });

  it('link upserts (status only: an import never touches a relationship) and deactivations (filtered on status: active, never a delete)', async () => {
    const ops = [
      importLinkUpsertOp('d1', {
        districtId: 'd1',
        parentId: 'p',
        studentSourcedId: 's',
        origin: 'import',
        status: 'active',
      }),
      linkDeactivateOp('d1', { parentId: 'p', studentSourcedId: 's', origin: 'manual' }),
    ];
    expect(ops[0]).toEqual({
      updateOne: {
        filter: { districtId: 'd1', parentId: 'p', studentSourcedId: 's', origin: 'import' },
        update: { $set: { status: 'active' } },
        upsert: true,
      },
    });
    expect(ops[1]).toEqual({
      updateOne: {
        filter: {
          districtId: 'd1',
          parentId: 'p',
          studentSourcedId: 's',
          origin: 'manual',
          status: 'active',
        },
        update: { $set: { status: 'inactive' } },
      },
    });
    await expect(Links.bulkWrite(ops, { ordered: false })).rejects.toThrow(notConnected);
  });

  it('the preview apply mark (only a previewed, unexpired preview) and part inserts', async () => {
    const now = new Date('2025-03-01T12:00:00.000Z');
    const op = previewApplyOp('d1', 'imp_1', now, { counts: { create: 1 } });
    expect(op.filter).toMatchObject({
      id: 'imp_1',
      districtId: 'd1',
      expiresAt: { $gt: now },
      $or: [{ status: 'previewed' }, expect.objectContaining({ status: 'applying' })],
    });
    expect(op.update).toEqual({
      $set: {
        status: 'applied',
        appliedAt: '2025-03-01T12:00:00.000Z',
        result: '{"counts":{"create":1}}',
      },
      $unset: { claimedAt: '' },
    });
    await expect(
      Previews.findOneAndUpdate(op.filter, op.update, { returnDocument: 'before' }).lean(),
    ).rejects.toThrow(notConnected);
    await expect(
      Parts.insertMany([
        { previewId: 'imp_1', part: 'records', seq: 0, data: '[]', expiresAt: now },
      ]),
    ).rejects.toThrow(notConnected);
  });
});
