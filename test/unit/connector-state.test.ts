/**
 * Delta bookkeeping, pure parts: what a finished run makes of the saved state, and how a
 * delta (or a feed that does not list every guardian) narrows the finalize decision.
 */
import { absenceScope, scopeFinalizeInput, snapshotMeta } from '../../src/jobs/connector-state.js';
import { nextConnectorState } from '../../src/models/connector-state/types.js';
import { decideFinalize, scanIds, type FinalizeInput } from '../../src/reconcile/finalize.js';

const input: FinalizeInput = {
  activeStudents: scanIds(['s1', 's2', 's3'], new Set(['s1'])),
  activeSisParents: scanIds(['p1', 'p2'], new Set(['p1'])),
  seenStudents: 1,
  linkRemovals: [{ parentId: 'p1', studentSourcedId: 's1' }],
  thresholdPercent: 100,
};

describe('connector state', () => {
  it('a full run resets the delta count; a delta adds one and moves the watermark', () => {
    const full = nextConnectorState(undefined, {
      districtId: 'd',
      connector: 'oneroster',
      runId: 'r1',
      snapshot: 'full',
      watermark: 'W1',
      at: 'T1',
    });
    expect(full).toMatchObject({
      runsSinceFull: 0,
      watermark: 'W1',
      lastFullAt: 'T1',
      lastRunId: 'r1',
    });
    const delta = nextConnectorState(full, {
      districtId: 'd',
      connector: 'oneroster',
      runId: 'r2',
      snapshot: 'delta',
      watermark: 'W2',
      at: 'T2',
    });
    expect(delta).toMatchObject({ runsSinceFull: 1, watermark: 'W2', lastFullAt: 'T1' });
  });

  it('records the snapshot kind and watermark in the run ledger meta', () => {
    expect(snapshotMeta({ snapshot: 'delta', watermark: 'W' })).toEqual({
      snapshot: 'delta',
      watermark: 'W',
    });
    expect(snapshotMeta({})).toEqual({});
  });

  it('a full snapshot from a complete feed deactivates by absence', () => {
    const d = decideFinalize(scopeFinalizeInput(input, { snapshot: 'full' }, {})).deactivations;
    expect(d).toEqual({
      studentSourcedIds: ['s2', 's3'],
      parentIds: ['p2'],
      links: input.linkRemovals,
    });
  });

  it('a delta deactivates nothing and is never held as suspicious', () => {
    const empty: FinalizeInput = {
      ...input,
      activeStudents: scanIds(['s1', 's2', 's3'], new Set()),
      activeSisParents: scanIds(['p1', 'p2'], new Set()),
      seenStudents: 0,
    };
    const r = decideFinalize(scopeFinalizeInput(empty, { snapshot: 'delta' }, {}));
    expect(r.hold).toBe(false);
    expect(r.deactivations).toEqual({ studentSourcedIds: [], parentIds: [], links: [] });
  });

  it('a feed that does not list every guardian deactivates students but no parent account', () => {
    const d = decideFinalize(
      scopeFinalizeInput(input, {}, { guardianLinksComplete: false }),
    ).deactivations;
    expect(d.studentSourcedIds).toEqual(['s2', 's3']);
    expect(d.parentIds).toEqual([]);
  });

  it('finalize collects absent ids only where absence counts (the other scans only count)', () => {
    expect(absenceScope({ snapshot: 'full' }, {})).toEqual({ students: true, parents: true });
    expect(absenceScope({}, { guardianLinksComplete: false })).toEqual({
      students: true,
      parents: false,
    });
    expect(absenceScope({ snapshot: 'delta' }, {})).toEqual({ students: false, parents: false });
  });
});
