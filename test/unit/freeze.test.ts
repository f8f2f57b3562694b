/** Sync modes from the addOnly policy and freeze windows (dates in the district's zone). */
import { DistrictPolicies, DistrictConfig } from '../../src/config/district.js';
import { describeSyncMode, localDate, syncModeAt } from '../../src/reconcile/freeze.js';

function district(policies: Record<string, unknown>, timezone?: string) {
  return DistrictConfig.parse({
    id: 'd',
    name: 'D',
    connector: {
      kind: 'powerschool',
      baseUrl: 'http://127.0.0.1:9',
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
    },
    policies,
    ...(timezone ? { schedule: { cron: '0 2 * * *', timezone } } : {}),
  });
}

describe('sync mode', () => {
  it('is normal by default and add-only under the addOnly policy', () => {
    expect(syncModeAt(district({}), new Date()).mode).toBe('normal');
    const d = syncModeAt(district({ addOnly: true }), new Date());
    expect(d).toEqual({ mode: 'add-only', because: 'policy' });
    expect(describeSyncMode(d)).toBe('add-only (district policy addOnly)');
  });

  it('applies windows inclusively, by the calendar date in the schedule time zone', () => {
    const summer = { from: '2025-06-20', to: '2025-08-15', mode: 'add-only', reason: 'summer' };
    const d = district({ freezeWindows: [summer] }, 'America/Los_Angeles');
    // 2025-06-20T06:59Z is still June 19 in Los Angeles (UTC-7)
    expect(syncModeAt(d, new Date('2025-06-20T06:59:00Z')).mode).toBe('normal');
    expect(syncModeAt(d, new Date('2025-06-20T07:00:00Z')).mode).toBe('add-only');
    expect(syncModeAt(d, new Date('2025-08-16T06:59:00Z')).mode).toBe('add-only');
    expect(syncModeAt(d, new Date('2025-08-16T07:00:00Z')).mode).toBe('normal');
    expect(describeSyncMode(syncModeAt(d, new Date('2025-07-01T12:00:00Z')))).toBe(
      'add-only (freeze window 2025-06-20..2025-08-15: summer)',
    );
    // without a schedule, dates are UTC
    const utc = district({ freezeWindows: [summer] });
    expect(syncModeAt(utc, new Date('2025-06-20T00:00:00Z')).mode).toBe('add-only');
  });

  it('lets a no-sync window win over add-only', () => {
    const d = district({
      addOnly: true,
      freezeWindows: [
        { from: '2025-07-01', to: '2025-07-31', mode: 'add-only' },
        { from: '2025-07-10', to: '2025-07-12', mode: 'no-sync' },
      ],
    });
    expect(syncModeAt(d, new Date('2025-07-11T12:00:00Z')).mode).toBe('no-sync');
    expect(syncModeAt(d, new Date('2025-07-13T12:00:00Z')).because).toMatchObject({
      mode: 'add-only',
    });
    expect(syncModeAt(d, new Date('2025-09-01T12:00:00Z')).because).toBe('policy');
  });

  it('refuses bad windows in the district file', () => {
    const bad = DistrictPolicies.safeParse({
      freezeWindows: [
        { from: '2025-08-15', to: '2025-06-20', mode: 'add-only' },
        { from: '2025-6-1', to: '2025-06-20', mode: 'freeze' },
      ],
    });
    expect(bad.success).toBe(false);
    const paths = bad.error?.issues.map(i => `${i.path.join('.')}: ${i.message}`).sort();
    expect(paths).toEqual([
      'freezeWindows.0.to: "from" must not be after "to"',
      'freezeWindows.1.from: must be a date YYYY-MM-DD',
      expect.stringMatching(/^freezeWindows\.1\.mode: /),
    ]);
  });

  it('formats local dates', () => {
    expect(localDate(new Date('2025-01-01T03:00:00Z'), 'America/New_York')).toBe('2024-12-31');
    expect(localDate(new Date('2025-01-01T03:00:00Z'), 'Europe/Berlin')).toBe('2025-01-01');
  });
});
