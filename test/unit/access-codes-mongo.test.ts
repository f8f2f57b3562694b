/**
 * MongoDB adapters of the access-code and sections repositories, checked without a server
 * (none exists in the development sandbox; the full contract runs with MONGO_URL): the
 * schemas declare the invariant-carrying indexes, the duplicate-key helpers read driver
 * errors correctly, and the section bulk ops pass mongoose casting under strict "throw".
 */
import mongoose, { type Schema } from 'mongoose';
import {
  accessCodeSchema,
  accountSchema,
  duplicateIndexes,
  isDuplicateKey,
  redemptionSchema,
  resetSchema,
  settingsSchema,
  MongoAccessCodeRepository,
} from '../../src/models/access-codes/mongo.js';
import { planSections } from '../../src/models/sections/plan.js';
import {
  enrollmentSchema,
  sectionSchema,
  sectionWriteOps,
  MongoSectionRepository,
} from '../../src/models/sections/mongo.js';

function index(schema: Schema, fields: Record<string, 1 | -1>): Record<string, unknown> {
  const hit = schema.indexes().find(([f]) => JSON.stringify(f) === JSON.stringify(fields));
  if (!hit) throw new Error(`no index ${JSON.stringify(fields)}`);
  return hit[1];
}

describe('access-code schemas declare the invariant-carrying indexes', () => {
  it('a code is unique across all districts', () => {
    expect(index(accessCodeSchema, { code: 1 })).toMatchObject({ unique: true });
    expect(index(accessCodeSchema, { code: 1 }).partialFilterExpression).toBeUndefined();
  });

  it('one active code per student (partial unique on status active)', () => {
    expect(index(accessCodeSchema, { districtId: 1, studentSourcedId: 1 })).toMatchObject({
      unique: true,
      partialFilterExpression: { status: 'active' },
    });
  });

  it('settings, resets, redemptions and usernames are unique per district', () => {
    expect(index(settingsSchema, { districtId: 1 }).unique).toBe(true);
    expect(index(resetSchema, { districtId: 1, id: 1 }).unique).toBe(true);
    expect(
      index(redemptionSchema, { districtId: 1, parentId: 1, studentSourcedId: 1, code: 1 }).unique,
    ).toBe(true);
    expect(index(accountSchema, { districtId: 1, usernameNormalized: 1 })).toMatchObject({
      unique: true,
      partialFilterExpression: { usernameNormalized: { $exists: true } },
    });
  });

  it('sections and enrollments: one per SIS id / per (section, student)', () => {
    expect(index(sectionSchema, { districtId: 1, sourcedId: 1 }).unique).toBe(true);
    expect(
      index(enrollmentSchema, { districtId: 1, sectionSourcedId: 1, studentSourcedId: 1 }).unique,
    ).toBe(true);
    expect(index(enrollmentSchema, { districtId: 1, studentSourcedId: 1 }).unique).toBeUndefined();
  });

  it('every schema is strict and has no version key', () => {
    for (const s of [
      accessCodeSchema,
      settingsSchema,
      resetSchema,
      redemptionSchema,
      accountSchema,
      sectionSchema,
      enrollmentSchema,
    ]) {
      expect(s.get('strict')).toBe('throw');
      expect(s.get('versionKey')).toBe(false);
      expect(s.get('autoIndex')).toBe(false);
    }
  });
});

describe('duplicate-key handling', () => {
  it('reads the failed positions of an unordered insertMany', () => {
    const err = {
      writeErrors: [
        { index: 2, code: 11000 },
        { index: 0, code: 11000 },
      ],
    };
    expect(isDuplicateKey(err)).toBe(true);
    expect([...duplicateIndexes(err)].sort()).toEqual([0, 2]);
  });

  it('rethrows anything that is not only duplicate keys', () => {
    const mixed = {
      writeErrors: [
        { index: 0, code: 11000 },
        { index: 1, code: 121 },
      ],
    };
    expect(() => duplicateIndexes(mixed)).toThrow();
    const network = new Error('socket hang up');
    expect(isDuplicateKey(network)).toBe(false);
    expect(() => duplicateIndexes(network)).toThrow('socket hang up');
  });
});

describe('adapters on a never-opened connection', () => {
  const conn = mongoose.createConnection();
  afterAll(() => conn.close());

  it('compile their models once per connection (a second repository reuses them)', () => {
    new MongoAccessCodeRepository(conn);
    new MongoAccessCodeRepository(conn);
    new MongoSectionRepository(conn);
    new MongoSectionRepository(conn);
    expect(Object.keys(conn.models).sort()).toEqual(
      [
        'AccessCode',
        'AccessCodeAccount',
        'AccessCodeRedemption',
        'AccessCodeReset',
        'AccessCodeSettings',
        // the change log's (codes issued and revoked are logged in the same transaction;
        // its audit index rows are written by the change-log consumer, ADR 0019)
        'ChangeAuditRow',
        'ChangeCursor',
        'ChangeLogEntry',
        'ChangeSeq',
        'Section',
        'SectionEnrollment',
      ].sort(),
    );
  });

  it('section write ops pass mongoose casting under strict "throw"', async () => {
    const plan = planSections(
      'd1',
      {
        studentSourcedIds: ['s1'],
        sections: [{ sourcedId: 'c1', title: 'Español I – 1', schoolSourcedId: 'h1' }],
        enrollments: [{ sectionSourcedId: 'c1', studentSourcedId: 's1' }],
      },
      {
        sections: [],
        enrollments: [
          { districtId: 'd1', sectionSourcedId: 'c0', studentSourcedId: 's1', status: 'active' },
        ],
      },
    );
    const ops = sectionWriteOps('d1', plan);
    expect(ops.enrollments).toHaveLength(2);
    // A connection of its own: a collection's buffering is fixed by the first model on it.
    const bare = mongoose.createConnection();
    const offline = <T>(name: string, schema: Schema<T>) => {
      const s = schema.clone();
      s.set('bufferCommands', false);
      return bare.model<T>(name, s);
    };
    const notConnected = /before initial connection/;
    await expect(offline('OfflineSection', sectionSchema).bulkWrite(ops.sections)).rejects.toThrow(
      notConnected,
    );
    await expect(
      offline('OfflineEnrollment', enrollmentSchema).bulkWrite(ops.enrollments),
    ).rejects.toThrow(notConnected);
    await bare.close();
  });
});
