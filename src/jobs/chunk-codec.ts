/**
 * Compact encoding of a roster chunk inside an apply job (docs/decisions/0015).
 *
 * A chunk (`RosterChunk`: ≈ 1,000 students, their guardians and relationships) is packed with
 * msgpackr's record extension (each object shape is written once, then only its values) and
 * carried in the job's data as a base64 string: BullMQ stores job data as one JSON string
 * (`Job.asJSON` → `JSON.stringify`), so a raw `Buffer` would become an array of numbers.
 *
 * A chunk holding a string that is not well-formed UTF-16 (a lone surrogate: UTF-8, hence
 * msgpack, cannot carry it) travels as JSON text instead (`enc: 'json'`), as before.
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

/**
 * Encodings of an apply job's chunk (`enc` in its data, for operators and the decoder):
 * `msgpackr-records+base64` normally; `json` (the chunk as a JSON string, exactly what the
 * JSON transport carried) for a chunk holding a string that is not well-formed UTF-16 (a lone
 * surrogate, which UTF-8 and so msgpack cannot carry: it would decode as U+FFFD).
 */
export const CHUNK_ENCODINGS = ['msgpackr-records+base64', 'json'] as const;
export type ChunkEncoding = (typeof CHUNK_ENCODINGS)[number];

/** A chunk encoded: the encoding's name and its text. */
export interface EncodedChunk {
  enc: ChunkEncoding;
  body: string;
}

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

declare global {
  interface String {
    /** ES2024 (Node ≥ 20): no lone surrogate. TypeScript's lib here predates it. */
    isWellFormed(): boolean;
  }
}

/** True when every string in `v` (arrays and objects walked) is well-formed UTF-16. */
function wellFormed(v: unknown): boolean {
  if (typeof v === 'string') return v.isWellFormed();
  if (typeof v !== 'object' || v === null) return true;
  if (Array.isArray(v)) {
    for (const x of v) if (!wellFormed(x)) return false;
    return true;
  }
  for (const k in v) {
    if (!k.isWellFormed() || !wellFormed((v as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * Encode a chunk: base64 text of its msgpackr (records) form, or, when it holds a string that
 * is not well-formed (lone surrogate), its JSON text (`CHUNK_ENCODINGS`). Pure; throws only on
 * values msgpackr cannot encode (e.g. a BigInt beyond 64 bits).
 */
export function encodeChunk(chunk: RosterChunk): EncodedChunk {
  return finishChunk(packChunk(chunk));
}

/**
 * A chunk half encoded (`packChunk`): its msgpackr bytes, in a buffer of its own (so it can
 * be transferred to another thread), or its final JSON form (`enc: 'json'`).
 */
export type PackedChunk =
  { enc: 'msgpackr-records+base64'; packed: Uint8Array } | { enc: 'json'; body: string };

/**
 * First half of `encodeChunk`, the part that needs the chunk's objects: msgpackr (records)
 * bytes copied into an `ArrayBuffer` of their own (msgpackr reuses its output buffer), or the
 * JSON text of a chunk with a lone surrogate. `finishChunk` does the rest anywhere (the pull
 * hands it to its chunk-sender thread, src/jobs/chunk-sender.ts). Pure; throws as `encodeChunk`.
 */
export function packChunk(chunk: RosterChunk): PackedChunk {
  const buf = packr.pack(chunk);
  // msgpackr writes a lone surrogate as 0xED 0xA0–0xBF … (short strings, its own encoder)
  // or as U+FFFD, EF BF BD (long strings, Buffer's UTF-8): a buffer with neither byte
  // pattern had none, and the strings need no walk (the common case, a memchr/memmem each).
  if ((buf.includes(0xed) || buf.includes(REPLACEMENT_UTF8)) && !wellFormed(chunk))
    return { enc: 'json', body: JSON.stringify(chunk) };
  return { enc: 'msgpackr-records+base64', packed: new Uint8Array(buf) };
}

/** Second half of `encodeChunk`: the text of a `packChunk` result (base64 of its bytes). Pure. */
export function finishChunk(p: PackedChunk): EncodedChunk {
  if (p.enc === 'json') return p;
  const b = p.packed;
  return { enc: p.enc, body: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') };
}

/** U+FFFD in UTF-8. */
const REPLACEMENT_UTF8 = Buffer.from([0xef, 0xbf, 0xbd]);

/**
 * Decode what `encodeChunk` returned. The result is not validated record by record (the
 * caller checks its arrays, `trustedApplyPayload`). Throws `ChunkDecodeError` when `body` is
 * not a chunk in encoding `enc` (bad base64 or JSON, truncated or foreign bytes).
 */
export function decodeChunk({ enc, body }: EncodedChunk): unknown {
  if (enc === 'json') {
    try {
      return JSON.parse(body) as unknown;
    } catch (err) {
      throw new ChunkDecodeError(
        `apply payload: chunk body is not JSON (${err instanceof Error ? err.message : String(err)})`,
      );
    }
  }
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
