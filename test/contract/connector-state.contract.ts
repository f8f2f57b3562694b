/**
 * Contract of the connector-state repository (delta watermarks), run on SQLite always and on
 * MongoDB when `MONGO_URL` is set (`connector-state-store.test.ts`).
 */
import { connectorStateRepository } from '../../src/models/connector-state/index.js';
import type { RosterStore } from '../../src/models/types.js';

export function runConnectorStateContract(
  name: string,
  open: () => Promise<RosterStore>,
  close: (store: RosterStore) => Promise<void>,
): void {
  describe(`ConnectorStateRepository contract: ${name}`, () => {
    let store: RosterStore;
    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await close(store);
    });

    it('starts empty, records a full run, then counts deltas', async () => {
      const repo = await connectorStateRepository(store);
      expect(await repo.get('d1', 'infinite-campus')).toBeUndefined();
      expect(
        await repo.recordRun({
          districtId: 'd1',
          connector: 'infinite-campus',
          runId: 'r1',
          snapshot: 'full',
          watermark: '2025-01-15T00:00:00Z',
          at: '2025-01-15T00:10:00.000Z',
        }),
      ).toBe(true);
      expect(await repo.get('d1', 'infinite-campus')).toEqual({
        districtId: 'd1',
        connector: 'infinite-campus',
        watermark: '2025-01-15T00:00:00Z',
        runsSinceFull: 0,
        lastFullAt: '2025-01-15T00:10:00.000Z',
        lastRunId: 'r1',
        updatedAt: '2025-01-15T00:10:00.000Z',
      });
      for (const [i, run] of ['r2', 'r3'].entries()) {
        await repo.recordRun({
          districtId: 'd1',
          connector: 'infinite-campus',
          runId: run,
          snapshot: 'delta',
          watermark: `2025-01-1${6 + i}T00:00:00Z`,
          at: `2025-01-1${6 + i}T00:10:00.000Z`,
        });
      }
      const s = await repo.get('d1', 'infinite-campus');
      expect(s?.runsSinceFull).toBe(2);
      expect(s?.watermark).toBe('2025-01-17T00:00:00Z');
      expect(s?.lastFullAt).toBe('2025-01-15T00:10:00.000Z');
    });

    it('recording the same run twice changes nothing (a re-delivered finalize)', async () => {
      const repo = await connectorStateRepository(store);
      const o = {
        districtId: 'd2',
        connector: 'skyward',
        runId: 'r9',
        snapshot: 'delta' as const,
        watermark: '2025-02-01T00:00:00Z',
        at: '2025-02-01T00:05:00.000Z',
      };
      expect(await repo.recordRun(o)).toBe(true);
      expect(await repo.recordRun(o)).toBe(false);
      expect((await repo.get('d2', 'skyward'))?.runsSinceFull).toBe(1);
    });

    it('keeps the old watermark when a run has none, and scopes by district and connector', async () => {
      const repo = await connectorStateRepository(store);
      await repo.recordRun({
        districtId: 'd3',
        connector: 'oneroster',
        runId: 'a',
        snapshot: 'full',
        watermark: 'W1',
        at: 't1',
      });
      await repo.recordRun({
        districtId: 'd3',
        connector: 'oneroster',
        runId: 'b',
        snapshot: 'delta',
        at: 't2',
      });
      expect((await repo.get('d3', 'oneroster'))?.watermark).toBe('W1');
      expect(await repo.get('d3', 'skyward')).toBeUndefined();
      expect(await repo.get('d4', 'oneroster')).toBeUndefined();
      expect(await repo.clear('d3', 'oneroster')).toBe(true);
      expect(await repo.get('d3', 'oneroster')).toBeUndefined();
      expect(await repo.clear('d3', 'oneroster')).toBe(false);
    });

    it('concurrent records of different runs all count', async () => {
      const repo = await connectorStateRepository(store);
      await Promise.all(
        ['x1', 'x2', 'x3', 'x4'].map(runId =>
          repo.recordRun({
            districtId: 'd5',
            connector: 'oneroster',
            runId,
            snapshot: 'delta',
            at: runId,
          }),
        ),
      );
      expect((await repo.get('d5', 'oneroster'))?.runsSinceFull).toBe(4);
    });
  });
}
