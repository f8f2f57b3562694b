/**
 * ADR 0015: the apply job's chunk encoding. Property: decode(encode(chunk)) is strictly
 * deep-equal to the chunk, over seeded random chunks (optional fields missing, present or
 * `undefined`, nested objects, dates, any Unicode); old-format and damaged jobs are refused
 * with `ApplyPayloadError`. Real connector chunks: test/integration/chunk-codec-connectors.test.ts.
 */
import { decodeChunk, encodeChunk } from '../../src/jobs/chunk-codec.js';
import {
  APPLY_PAYLOAD_VERSION,
  ApplyPayloadError,
  applyJobData,
  trustedApplyPayload,
  type ApplyPayload,
} from '../../src/jobs/payloads.js';
import { mulberry32, type Prng } from '../../src/dev/prng.js';
import type { RosterChunk } from '../../src/mapping/canonical.js';

const ALPHABET = [
  'a',
  'Z',
  '0',
  ' ',
  'é',
  'Ö',
  'ß',
  '李',
  '😀',
  '"',
  '\\',
  '\n',
  '\u0000',
  '\u2028',
];
const str = (r: Prng, max = 12) =>
  Array.from({ length: r.int(0, max) }, () => r.pick(ALPHABET)).join('');
/** A value for an optional field: missing (undefined returned), or set (maybe to undefined). */
const MISSING = Symbol('missing');
const opt = <T>(r: Prng, v: () => T): T | undefined | typeof MISSING =>
  r.chance(0.4) ? MISSING : r.chance(0.2) ? undefined : v();

function record(r: Prng, fields: Record<string, () => unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(fields)) {
    const v = f();
    if (v !== MISSING) o[k] = v;
  }
  return o;
}

function randomChunk(r: Prng): RosterChunk {
  const n = r.int(0, 40);
  const students = Array.from({ length: n }, (_, i) =>
    record(r, {
      sourcedId: () => `s${i}-${str(r, 4)}`,
      uniqueId: () => String(r.int(0, 1e9)),
      givenName: () => str(r),
      familyName: () => str(r),
      email: () => opt(r, () => `${str(r, 5)}@x.example`),
      schoolSourcedIds: () => Array.from({ length: r.int(0, 3) }, () => str(r, 3)),
      grade: () => opt(r, () => String(r.int(0, 12))),
      status: () => r.pick(['active', 'inactive']),
      // not canonical: values the trusted path would carry all the same
      extra: () =>
        opt(r, () =>
          r.pick([
            new Date(r.int(0, 2e12)),
            { nested: { deeper: [1, -2.5, null, true, str(r)], empty: {} } },
            [],
            r.int(-(2 ** 40), 2 ** 40),
            r.next(),
            null,
          ]),
        ),
    }),
  );
  const guardians = Array.from({ length: r.int(0, 60) }, (_, i) =>
    record(r, {
      sourcedId: () => `g${i}`,
      uniqueId: () => opt(r, () => str(r, 6)),
      givenName: () => str(r),
      familyName: () => str(r),
      email: () => opt(r, () => str(r)),
      phone: () => opt(r, () => str(r, 10)),
      role: () => r.pick(['parent', 'guardian', 'relative']),
      status: () => r.pick(['active', 'inactive']),
    }),
  );
  const relationships = Array.from({ length: r.int(0, 80) }, () =>
    record(r, {
      guardianSourcedId: () => `g${r.int(0, 60)}`,
      studentSourcedId: () => `s${r.int(0, 40)}`,
      relationship: () => opt(r, () => str(r)),
      portalAccess: () => opt(r, () => r.chance(0.5)),
      livesWith: () => opt(r, () => r.chance(0.5)),
      custody: () => opt(r, () => r.chance(0.5)),
    }),
  );
  const chunk: Record<string, unknown> = {
    students,
    guardians,
    relationships,
    relationshipsSupplied: r.chance(0.8),
  };
  const sections = opt(r, () => [{ sourcedId: 'sec1', title: str(r), schoolSourcedId: 'sch1' }]);
  if (sections !== MISSING) chunk.sections = sections;
  const enrollments = opt(r, () => [{ sectionSourcedId: 'sec1', studentSourcedId: 's0' }]);
  if (enrollments !== MISSING) chunk.enrollments = enrollments;
  return chunk as unknown as RosterChunk;
}

const payload = (chunk: RosterChunk): ApplyPayload => ({
  v: APPLY_PAYLOAD_VERSION,
  districtId: 'd1',
  runId: 'r1',
  chunkNo: 3,
  generation: 2,
  chunk,
});
/** What BullMQ does to job data: JSON text in Redis, parsed back by the worker. */
const throughRedis = (data: unknown): unknown => JSON.parse(JSON.stringify(data));

describe('chunk codec (ADR 0015)', () => {
  it('decode(encode(chunk)) equals the chunk exactly, over 500 seeded random chunks', () => {
    const r = mulberry32(15);
    let undefinedFields = 0;
    let dates = 0;
    for (let i = 0; i < 500; i++) {
      const chunk = randomChunk(r);
      const encoded = encodeChunk(chunk);
      expect(encoded.enc).toBe('msgpackr-records+base64');
      const back = decodeChunk(encoded);
      expect(back).toStrictEqual(chunk);
      // toStrictEqual treats `{a: undefined}` and `{}` as different: check the keys too
      const keys = (c: unknown) => (c as RosterChunk).students.map(s => Object.keys(s).join(','));
      expect(keys(back)).toEqual(keys(chunk));
      for (const s of chunk.students as unknown as Record<string, unknown>[]) {
        if ('email' in s && s.email === undefined) undefinedFields++;
        if (s.extra instanceof Date) dates++;
      }
    }
    // the generator did produce the cases the property is about
    expect(undefinedFields).toBeGreaterThan(50);
    expect(dates).toBeGreaterThan(50);
  });

  it('a job goes through BullMQ JSON and back to the same payload', () => {
    const r = mulberry32(7);
    for (let i = 0; i < 50; i++) {
      const p = payload(randomChunk(r));
      const data = throughRedis(applyJobData(p)) as Record<string, unknown>;
      expect(data).toMatchObject({
        v: APPLY_PAYLOAD_VERSION,
        districtId: 'd1',
        runId: 'r1',
        chunkNo: 3,
        generation: 2,
        size: {
          students: p.chunk.students.length,
          guardians: p.chunk.guardians.length,
          relationships: p.chunk.relationships.length,
        },
        enc: 'msgpackr-records+base64',
      });
      expect(trustedApplyPayload(data)).toStrictEqual(p);
    }
  });

  it.each([
    ['short', 'Ana\uD800'],
    ['low surrogate', '\uDC00x'],
    ['long', `${'n'.repeat(300)}\uD83D`],
  ])('a chunk with a lone surrogate (%s string) travels as JSON, unchanged', (_, name) => {
    const chunk = randomChunk(mulberry32(3));
    chunk.students.push({
      sourcedId: 'lone',
      uniqueId: 'u',
      givenName: name,
      familyName: 'B',
      schoolSourcedIds: [],
      status: 'active',
    });
    const p = payload(JSON.parse(JSON.stringify(chunk)) as RosterChunk);
    const data = throughRedis(applyJobData(p));
    expect(data).toMatchObject({ enc: 'json' });
    const back = trustedApplyPayload(data);
    expect(back).toStrictEqual(p);
    expect(back.chunk.students.at(-1)?.givenName).toBe(name);
  });

  it('Hangul and a real U+FFFD (the bytes the surrogate check looks for) stay msgpackr, exact', () => {
    const chunk = randomChunk(mulberry32(4));
    for (const name of ['한글 이름', '\uFFFD', `${'h'.repeat(300)}\uFFFD`, '힣'])
      chunk.guardians.push({
        sourcedId: `g-${name.length}`,
        givenName: name,
        familyName: 'K',
        role: 'parent',
        status: 'active',
      });
    const encoded = encodeChunk(chunk);
    expect(encoded.enc).toBe('msgpackr-records+base64');
    expect(decodeChunk(encoded)).toStrictEqual(chunk);
  });

  it('refuses a version 2 job (plain JSON chunk) with ApplyPayloadError', () => {
    const old = {
      v: 2,
      districtId: 'd1',
      runId: 'r1',
      chunkNo: 0,
      generation: 1,
      chunk: { students: [], guardians: [], relationships: [], relationshipsSupplied: true },
    };
    expect(() => trustedApplyPayload(old)).toThrow(ApplyPayloadError);
    expect(() => trustedApplyPayload(old)).toThrow('apply payload version 2, expected 3');
    // a version 3 tag on a plain chunk is not misread either
    expect(() => trustedApplyPayload({ ...old, v: APPLY_PAYLOAD_VERSION })).toThrow(
      ApplyPayloadError,
    );
  });

  it('refuses a damaged, stripped or foreign job with ApplyPayloadError', () => {
    const good = throughRedis(applyJobData(payload(randomChunk(mulberry32(1))))) as Record<
      string,
      unknown
    >;
    const body = good.body as string;
    const cases: Record<string, unknown>[] = [
      { ...good, body: body.slice(0, body.length - 8) }, // truncated
      { ...good, body: '!!!not base64!!!' },
      { ...good, body: '' },
      { ...good, body: Buffer.from('{"students":[]}').toString('base64') }, // not msgpack of a chunk
      { ...good, body: Buffer.from([0x93, 1, 2, 3]).toString('base64') }, // msgpack, not a chunk
      { ...good, enc: 'gzip' },
      { ...good, enc: 'json' },
      { ...good, body: undefined },
      { ...good, districtId: '' },
      { ...good, stripped: true },
    ];
    for (const c of cases) expect(() => trustedApplyPayload(c)).toThrow(ApplyPayloadError);
    expect(() => trustedApplyPayload(null)).toThrow(ApplyPayloadError);
    expect(trustedApplyPayload(good).chunkNo).toBe(3);
  });
});
