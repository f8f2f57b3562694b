/**
 * ADR 0015: every connector's real chunks (generated district → its fake SIS on loopback or
 * in files → the product's connector) come back from the apply job encoding exactly, and
 * exactly as the JSON transport delivered them before (canonical records carry no
 * `undefined` property and no `Date`).
 */
import { readSisChunks } from '../../bench/sis-chunks.js';
import { SIS_KINDS } from '../../bench/sis-kinds.js';
import {
  APPLY_PAYLOAD_VERSION,
  applyJobData,
  trustedApplyPayload,
  type ApplyPayload,
} from '../../src/jobs/payloads.js';

describe.each(SIS_KINDS)('chunk encoding of %s chunks', kind => {
  it('decodes to the chunk read, strictly, and to what JSON carried', async () => {
    const chunks = await readSisChunks(kind, { students: 600, seed: 15, pageSize: 250 });
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    for (const [chunkNo, chunk] of chunks.entries()) {
      const p: ApplyPayload = {
        v: APPLY_PAYLOAD_VERSION,
        districtId: kind,
        runId: 'r',
        chunkNo,
        generation: 1,
        chunk,
      };
      const data = applyJobData(p);
      expect(data.enc).toBe('msgpackr-records+base64');
      const back = trustedApplyPayload(JSON.parse(JSON.stringify(data)));
      expect(back).toStrictEqual(p);
      expect(back.chunk).toStrictEqual(JSON.parse(JSON.stringify(chunk)));
    }
  });
});
