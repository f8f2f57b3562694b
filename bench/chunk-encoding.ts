/**
 * Issue 15 / ADR 0015: what one apply job's chunk costs to carry through Redis, per encoding.
 *
 * Real 1,000-student chunks (generated district → fake SIS → the product's connector,
 * `bench/sis-chunks.ts`); for each chunk and encoding, in this one process:
 *
 * - bytes: the job's `data` string as BullMQ stores it (UTF-8 bytes);
 * - encode CPU µs: building the job data (the chunk encoded, for the new formats), BullMQ's
 *   `JSON.stringify` of it (`Job.asJSON`) and its UTF-8 bytes (what ioredis writes);
 * - decode CPU µs: the UTF-8 reply turned into a string (ioredis), BullMQ's `JSON.parse`
 *   (`Job.fromJSON`), and the payload check/decoding `handleApply` does (`trustedApplyPayload`
 *   for the new format, the same array checks for the old one).
 *
 * CPU time (`process.cpuUsage`, user + system) of each operation, medians over chunks ×
 * rounds, so the figures hold on a loaded machine. Every decoded chunk is checked
 * deep-equal (strict) to the chunk read. The ratio column is new / JSON in the same run.
 *
 * `npx tsx bench/chunk-encoding.ts [--students 50000] [--rounds 5] [--kind powerschool] [--seed 42]`
 */
import { deepStrictEqual } from 'node:assert/strict';
import { deflateRawSync, inflateRawSync, constants as zc } from 'node:zlib';
import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';
import {
  APPLY_PAYLOAD_VERSION,
  applyJobData,
  trustedApplyPayload,
  type ApplyPayload,
} from '../src/jobs/payloads.js';
import type { RosterChunk } from '../src/mapping/canonical.js';
import { readSisChunks } from './sis-chunks.js';
import { SIS_KINDS, type SisKind } from './sis-kinds.js';

const { values: args } = parseArgs({
  options: {
    students: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '5' },
    kind: { type: 'string', default: 'powerschool' },
    seed: { type: 'string', default: '42' },
  },
});
const kind = args.kind as SisKind;
if (!SIS_KINDS.includes(kind)) throw new Error(`--kind: one of ${SIS_KINDS.join(', ')}`);

interface Variant {
  name: string;
  /** Job data of the payload (what `queue.add` gets). */
  data(p: ApplyPayload): unknown;
  /** The chunk back from the job data parsed from JSON. */
  chunk(data: unknown): unknown;
}

const routing = (p: ApplyPayload) => ({
  v: p.v,
  districtId: p.districtId,
  runId: p.runId,
  chunkNo: p.chunkNo,
  generation: p.generation,
});
/** Alternatives measured for the ADR, not used by the product. */
const maps = new Packr({ useRecords: false });
const records = new Packr({ useRecords: true, useToJSON: false });
const recordsBundled = new Packr({ useRecords: true, useToJSON: false, bundleStrings: true });
const arraysOk = (c: Partial<Record<string, unknown>>) =>
  Array.isArray(c.students) && Array.isArray(c.guardians) && Array.isArray(c.relationships);
const b64 = (buf: Buffer) => buf.toString('base64');
const unb64 = (data: unknown) => Buffer.from((data as { body: string }).body, 'base64');

const VARIANTS: Variant[] = [
  {
    name: 'JSON (before: version 2)',
    data: p => p,
    chunk: d => {
      const c = (d as { chunk: Partial<Record<string, unknown>> }).chunk;
      if (!arraysOk(c)) throw new Error('bad chunk');
      return c;
    },
  },
  {
    name: 'msgpackr records + base64 (version 3)',
    data: p => applyJobData(p),
    chunk: d => trustedApplyPayload(d).chunk,
  },
  {
    name: 'alt: msgpackr maps (no records) + base64',
    data: p => ({ ...routing(p), body: b64(maps.pack(p.chunk)) }),
    chunk: d => maps.unpack(unb64(d)) as unknown,
  },
  {
    name: 'alt: msgpackr records, bundleStrings + base64',
    data: p => ({ ...routing(p), body: b64(recordsBundled.pack(p.chunk)) }),
    chunk: d => recordsBundled.unpack(unb64(d)) as unknown,
  },
  {
    name: 'alt: msgpackr records + deflate(1) + base64',
    data: p => ({
      ...routing(p),
      body: b64(
        deflateRawSync(records.pack(p.chunk), { level: 1, strategy: zc.Z_DEFAULT_STRATEGY }),
      ),
    }),
    chunk: d => records.unpack(inflateRawSync(unb64(d))) as unknown,
  },
];

function cpuUs(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const u = process.cpuUsage(t);
  return u.user + u.system;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main() {
  const students = Number(args.students);
  const rounds = Number(args.rounds);
  const chunks: RosterChunk[] = (
    await readSisChunks(kind, { students, seed: Number(args.seed) })
  ).filter(c => c.students.length === 1000);
  const payloads: ApplyPayload[] = chunks.map((chunk, chunkNo) => ({
    v: APPLY_PAYLOAD_VERSION,
    districtId: 'bench-district',
    runId: 'rmj4x0k1a2b3c4d5',
    chunkNo,
    generation: 1,
    chunk,
  }));
  const records = chunks.reduce(
    (n, c) => n + c.students.length + c.guardians.length + c.relationships.length,
    0,
  );
  console.log(
    `${kind}: ${chunks.length} chunks of 1,000 students (${Math.round(records / chunks.length)} records per chunk), ${rounds} rounds; CPU µs per chunk, medians`,
  );
  const rows: { name: string; bytes: number; enc: number; dec: number }[] = [];
  for (const v of VARIANTS) {
    const bytes: number[] = [];
    const enc: number[] = [];
    const dec: number[] = [];
    for (let r = -1; r < rounds; r++) {
      for (const p of payloads) {
        let s = '';
        let wire = Buffer.alloc(0);
        const e = cpuUs(() => {
          s = JSON.stringify(v.data(p));
          wire = Buffer.from(s, 'utf8');
        });
        let back: unknown;
        const d = cpuUs(() => {
          back = v.chunk(JSON.parse(wire.toString('utf8')) as unknown);
        });
        if (r < 0) {
          deepStrictEqual(back, p.chunk); // every chunk comes back exactly (warm-up round)
          continue;
        }
        bytes.push(wire.length);
        enc.push(e);
        dec.push(d);
      }
    }
    rows.push({ name: v.name, bytes: median(bytes), enc: median(enc), dec: median(dec) });
  }
  const base = rows[0]!;
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log(
    '\n| encoding | job data bytes | encode CPU µs | decode CPU µs | bytes / JSON | encode / JSON | decode / JSON |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(
      `| ${r.name} | ${r.bytes.toLocaleString('en-US')} | ${Math.round(r.enc).toLocaleString('en-US')} | ${Math.round(r.dec).toLocaleString('en-US')} | ${ratio(r.bytes, base.bytes)} | ${ratio(r.enc, base.enc)} | ${ratio(r.dec, base.dec)} |`,
    );
}

await main();
