/**
 * Compact encoding of a roster chunk inside an apply job (docs/decisions/0015).
 *
 * A chunk (`RosterChunk`: ≈ 1,000 students, their guardians and relationships) is packed with
 * msgpackr's record extension (each object shape is written once, then only its values) and
 * carried in the job's data as a base64 string: BullMQ stores job data as one JSON string
 * (`Job.asJSON` → `JSON.stringify`), so a raw `Buffer` would become an array of numbers.
 *
 * Every buffer is self-contained: the record definitions it uses are written inline (no
 * shared `structures`), so any process with this module decodes any buffer, whatever it
 * encoded before.
 *
 * Round trip: `decodeChunk(encodeChunk(c))` is deep-equal to `c`, strictly: nested objects
 * and arrays, strings (any Unicode), booleans, numbers, `null`, a property that is missing
 * stays missing, a property set to `undefined` stays present with `undefined`, a `Date`
 * comes back as a `Date` (the JSON transport this replaces turned it into an ISO string and
 * dropped `undefined` properties; canonical records carry neither, test/unit/chunk-codec.test.ts).
 */
import { Packr } from 'msgpackr';
import type { RosterChunk } from '../mapping/canonical.js';

/** Name of the encoding, written in each apply job's data (`enc`) for operators. */
export const CHUNK_ENCODING = 'msgpackr-records+base64';

/**
 * msgpackr with records; no shared structures (each buffer carries its own record
 * definitions). `useToJSON: false`: an object is written as its own properties, never as what
 * a `toJSON()` method returns (the encoded form must be the records themselves).
 */
const packr = new Packr({ useRecords: true, useToJSON: false });

/** Bad encoded chunk (not base64 of a msgpackr chunk, or truncated). */
export class ChunkDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChunkDecodeError';
  }
}

/** Encode a chunk: base64 text of its msgpackr (records) form. Pure; throws only on values msgpackr cannot encode (e.g. a BigInt beyond 64 bits). */
export function encodeChunk(chunk: RosterChunk): string {
  return packr.pack(chunk).toString('base64');
}

/**
 * Decode what `encodeChunk` returned. The result is not validated record by record (the
 * caller checks its arrays, `trustedApplyPayload`). Throws `ChunkDecodeError` when `body` is
 * not an encoded chunk (bad base64, truncated or foreign bytes).
 */
export function decodeChunk(body: string): unknown {
  const buf = Buffer.from(body, 'base64');
  // Buffer.from ignores characters outside the base64 alphabet: a length that does not
  // round trip means the text was not ours.
  if (buf.length === 0 || Math.ceil(buf.length / 3) * 4 !== body.length)
    throw new ChunkDecodeError('apply payload: chunk body is not base64');
  try {
    return packr.unpack(buf);
  } catch (err) {
    throw new ChunkDecodeError(
      `apply payload: chunk body does not decode (${err instanceof Error ? err.message : String(err)})`,
    );
  }
}
