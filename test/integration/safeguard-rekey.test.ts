/**
 * Issue 18 §1: the deletion safeguard sees links and re-keys. A scripted connector (exact
 * ids) feeds the real pipeline: BullMQ on real Redis → reconcile → SQLite → finalize.
 *
 * 1. Links vanish without a hold: a snapshot with the same students and guardians but an
 *    explicitly empty relationship list must be held (link measure), not remove every link.
 * 2. Mass re-key (sourcedId and Unique ID both change): measured against the active state
 *    before the run, recognised as a probable re-key, held before any new student or link is
 *    written, with a remap (old → new by name + school + grade) that approval applies.
 * 3. A new sourcedId with a known Unique ID moves the student (links and codes follow).
 */
import { randomBytes } from 'node:crypto';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { formatRemap } from '../../src/cli/format.js';
import { approveRun } from '../../src/jobs/sync.js';
import { FINALIZE_HOOKS } from '../../src/jobs/finalize-hooks.js';
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import type { ChangeEntry } from '../../src/models/changes/types.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import {
  ScriptedConnector,
  scriptedGuardian,
  scriptedStudent,
  type ScriptedSnapshot,
} from '../helpers/scripted-connector.js';

const SCHOOLS = [{ sourcedId: 'sch-1', name: 'Lincoln Elementary' }];

async function start(threshold?: number): Promise<{ h: Harness; sis: ScriptedConnector }> {
  const sis = new ScriptedConnector();
  const h = await startHarness({
    students: 1,
    seed: 18,
    connectorFactory: () => sis,
    ...(threshold === undefined
      ? {}
      : { district: { policies: { deletionThresholdPercent: threshold } } }),
  });
  return { h, sis };
}

async function activeSisLinks(h: Harness): Promise<string[]> {
  return (await h.store.getLinks(h.districtId))
    .filter(l => l.origin === 'sis' && l.status === 'active')
    .map(l => `${l.parentId}>${l.studentSourcedId}`)
    .sort();
}

async function activeStudents(h: Harness): Promise<string[]> {
  return (await h.store.getStudents(h.districtId))
    .filter(s => s.status === 'active')
    .map(s => s.sourcedId)
    .sort();
}

async function runEntries(h: Harness, runId: string): Promise<ChangeEntry[]> {
  const log = await changeLogRepository(h.store);
  return log.list(h.districtId, { causeIds: [runId], limit: 10_000 });
}

/** Issue a code to each listed student (as an admin would) and return student → code. */
async function issueCodes(h: Harness, ids: string[]): Promise<Map<string, string>> {
  const repo = await accessCodeRepository(h.store);
  const { issued } = await repo.issueCodes(h.districtId, ids, {
    generate: () => randomBytes(8).toString('hex').toUpperCase().slice(0, 12),
    at: new Date().toISOString(),
    change: { cause: { kind: 'code-issue' }, actor: 'test' },
  });
  return new Map(issued.map(i => [i.studentSourcedId, i.code]));
}

async function activeCodeOf(h: Harness, studentSourcedId: string): Promise<string | undefined> {
  const repo = await accessCodeRepository(h.store);
  return (await repo.codesOfStudent(h.districtId, studentSourcedId)).find(
    c => c.status === 'active',
  )?.code;
}

describe('links vanish without a hold (relationships supplied, but empty)', () => {
  let h: Harness;
  let sis: ScriptedConnector;
  beforeAll(async () => {
    ({ h, sis } = await start());
  });
  afterAll(async () => {
    await h?.close();
  });

  it('holds a run that would remove every SIS link, and removes them only on approval', async () => {
    const full: ScriptedSnapshot = {
      schools: SCHOOLS,
      students: [
        scriptedStudent('S-1', 'U-1', 'Ana'),
        scriptedStudent('S-2', 'U-2', 'Ben'),
        scriptedStudent('S-3', 'U-3', 'Cruz'),
      ],
      guardians: ['G-1', 'G-2', 'G-3'].map(scriptedGuardian),
      relationships: [
        { guardianSourcedId: 'G-1', studentSourcedId: 'S-1' },
        { guardianSourcedId: 'G-1', studentSourcedId: 'S-2' },
        { guardianSourcedId: 'G-2', studentSourcedId: 'S-2' },
        { guardianSourcedId: 'G-3', studentSourcedId: 'S-3' },
      ],
    };
    sis.snapshot = full;
    const first = (await h.sync()).run;
    expect(first.status).toBe('succeeded');
    const links = await activeSisLinks(h);
    expect(links).toHaveLength(4);

    // Same students and guardians; the SIS says "these are all the relationships": none.
    sis.snapshot = { ...full, relationships: [] };
    const { run, writes } = await h.sync();
    expect(run.status).toBe('needs-approval');
    expect(run.error).toContain('4 of 4 active SIS links would be removed');
    expect(run.held).toEqual({ students: 0, parents: 0, links: 4 });
    expect((await h.ctx.store.listHeld(run.id, 'link', 0, 10)).links).toHaveLength(4);
    expect(run.counts.link?.['remove-held']).toBe(4);
    expect(writes).toBe(0);
    expect(await activeSisLinks(h)).toEqual(links);

    const approved = await approveRun(h.ctx, run.id, 'admin:test');
    expect(approved.status).toBe('succeeded');
    expect(await activeSisLinks(h)).toEqual([]);
    const entries = await runEntries(h, run.id);
    expect(entries.filter(e => e.entity === 'link' && e.action === 'deactivate')).toHaveLength(4);
    expect(new Set(entries.map(e => e.cause.kind))).toEqual(new Set(['approval']));
  });
});

/** Four students with guardians; `rekey` renames every sourcedId (and Unique ID). */
function district(opts: { sourced?: (n: number) => string; unique?: (n: number) => string }) {
  const sid = opts.sourced ?? (n => `${12344 + n}`);
  const uid = opts.unique ?? (n => `U${12344 + n}`);
  const names = ['Ana', 'Ben', 'Cruz', 'Dee'];
  return {
    schools: SCHOOLS,
    students: names.map((name, i) => scriptedStudent(sid(i + 1), uid(i + 1), name)),
    guardians: ['G-1', 'G-2', 'G-3'].map(scriptedGuardian),
    relationships: [
      { guardianSourcedId: 'G-1', studentSourcedId: sid(1) },
      { guardianSourcedId: 'G-1', studentSourcedId: sid(2) },
      { guardianSourcedId: 'G-2', studentSourcedId: sid(3) },
      { guardianSourcedId: 'G-3', studentSourcedId: sid(4) },
    ],
  };
}
const OLD_IDS = ['12345', '12346', '12347', '12348'];
const NEW_IDS = OLD_IDS.map(id => `D1-${id}`);

describe.each([
  ['the default 10 %', undefined],
  ['a 50 % threshold', 50],
])('a mass re-key (sourcedId and Unique ID both change) at %s', (_label, threshold) => {
  let h: Harness;
  let sis: ScriptedConnector;
  let api: ApiServer;
  let base: string;
  const token = `gst_test-admin-token-${randomBytes(16).toString('hex')}`;
  const tokens: ApiTokenEntry[] = [{ name: 'admin', sha256: hashToken(token), role: 'admin' }];
  beforeAll(async () => {
    ({ h, sis } = await start(threshold));
    api = await buildApiServer(h.ctx, { tokens, dashboard: false });
    base = await api.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await api?.close();
    await h?.close();
  });

  it('is held before anything is written, then approval remaps: links and codes follow, no account is recreated', async () => {
    sis.snapshot = district({});
    expect((await h.sync()).run.status).toBe('succeeded');
    const parentsBefore = await h.store.getParents(h.districtId);
    const linksBefore = await activeSisLinks(h);
    const codes = await issueCodes(h, OLD_IDS);
    expect(codes.size).toBe(4);

    sis.snapshot = district({ sourced: n => `D1-${12344 + n}`, unique: n => `D1-U${12344 + n}` });
    const { run, writes } = await h.sync();
    // held, measured against the 4 students active before the run (not "4 of 8")
    expect(run.status).toBe('needs-approval');
    expect(run.error).toContain('probable re-key');
    expect(run.error).toContain('4 of 4 active students');
    expect(run.counts.student?.['create-held']).toBe(4);
    expect(run.counts.student?.create).toBeUndefined();
    // nothing written: no new student, no new link, the old ones untouched
    expect(writes).toBe(0);
    expect(await activeStudents(h)).toEqual(OLD_IDS);
    expect((await h.store.getStudents(h.districtId)).map(s => s.sourcedId).sort()).toEqual(OLD_IDS);
    expect(await activeSisLinks(h)).toEqual(linksBefore);
    expect(
      (await runEntries(h, run.id)).filter(e => e.entity === 'student' || e.entity === 'link'),
    ).toEqual([]);

    // the remap, listed over HTTP and by the CLI formatter
    const res = await fetch(`${base}/runs/${run.id}/remap`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const page = (await res.json()) as {
      newStudents: number;
      proposed: number;
      items: { remapFrom: string; sourcedId: string }[];
    };
    expect(page.newStudents).toBe(4);
    expect(page.proposed).toBe(4);
    expect(page.items.map(i => `${i.remapFrom}>${i.sourcedId}`)).toEqual(
      OLD_IDS.map((id, i) => `${id}>${NEW_IDS[i] ?? ''}`),
    );
    const all = await fetch(`${base}/runs/${run.id}/remap?students=all&limit=2`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(((await all.json()) as { items: { sourcedId: string }[] }).items).toHaveLength(2);
    const totals = await h.store.countDeferredStudents(run.id);
    const rows = await h.store.listDeferredStudents(run.id, { onlyRemapped: true });
    expect(formatRemap(run, totals, rows)).toContain('12345 → D1-12345  Ana Rivera');

    const approved = await approveRun(h.ctx, run.id, 'admin:test');
    expect(approved.status).toBe('succeeded');
    // same records under their new ids; links and codes followed; no account recreated
    expect(await activeStudents(h)).toEqual(NEW_IDS);
    expect((await h.store.getStudents(h.districtId)).map(s => s.sourcedId).sort()).toEqual(NEW_IDS);
    expect(await activeSisLinks(h)).toEqual(
      linksBefore.map(l => l.replace(/>(\d+)$/, '>D1-$1')).sort(),
    );
    expect(await h.store.getParents(h.districtId)).toEqual(parentsBefore);
    for (const [i, id] of OLD_IDS.entries()) {
      expect(await activeCodeOf(h, NEW_IDS[i] ?? '')).toBe(codes.get(id));
      expect(await activeCodeOf(h, id)).toBeUndefined();
    }
    const entries = await runEntries(h, run.id);
    expect(new Set(entries.map(e => e.cause.kind))).toEqual(new Set(['approval']));
    expect(entries.filter(e => e.entity === 'parent')).toEqual([]);
    const moves = entries.filter(e => e.entity === 'student');
    expect(moves.map(e => [e.action, e.before?.sourcedId, e.after?.sourcedId])).toEqual(
      OLD_IDS.map((id, i) => ['update', id, NEW_IDS[i]]),
    );
    expect(entries.filter(e => e.entity === 'link' && e.action === 'update')).toHaveLength(4);
    expect(entries.filter(e => e.entity === 'code' && e.action === 'update')).toHaveLength(4);
    expect(entries.filter(e => e.action === 'deactivate' || e.action === 'create')).toEqual([]);
    expect(approved.counts.student?.update).toBe(4);

    // the next sync of the same snapshot changes nothing
    const again = await h.sync();
    expect(again.run.status).toBe('succeeded');
    expect(again.writes).toBe(0);
  });
});

describe('student identity survives a re-key (new sourcedId, known Unique ID)', () => {
  let h: Harness;
  let sis: ScriptedConnector;
  beforeAll(async () => {
    ({ h, sis } = await start());
  });
  afterAll(async () => {
    await h?.close();
  });

  it('moves the student (links and codes follow) instead of deactivate + create', async () => {
    sis.snapshot = district({});
    expect((await h.sync()).run.status).toBe('succeeded');
    const parentsBefore = await h.store.getParents(h.districtId);
    const linksBefore = await activeSisLinks(h);
    const codes = await issueCodes(h, OLD_IDS);

    // new sourcedIds, same Unique IDs; plus one genuinely new student with a guardian
    const next = district({ sourced: n => `D1-${12344 + n}` });
    next.students.push(scriptedStudent('D1-20000', 'U20000', 'Eve'));
    next.relationships.push({ guardianSourcedId: 'G-3', studentSourcedId: 'D1-20000' });
    sis.snapshot = next;
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.student).toEqual({ update: 4, create: 1 });
    expect(run.counts.link).toEqual({ update: 4, add: 1 });
    expect(run.counts.parent).toBeUndefined();
    expect(await activeStudents(h)).toEqual([...NEW_IDS, 'D1-20000'].sort());
    expect((await h.store.getStudents(h.districtId)).map(s => s.sourcedId).sort()).toEqual(
      [...NEW_IDS, 'D1-20000'].sort(),
    );
    const moved = linksBefore.map(l => l.replace(/>(\d+)$/, '>D1-$1'));
    const g3 = parentsBefore.find(p => p.sources.some(s => s.sourcedId === 'G-3'))?.id ?? '?';
    expect(await activeSisLinks(h)).toEqual([...moved, `${g3}>D1-20000`].sort());
    expect(await h.store.getParents(h.districtId)).toEqual(parentsBefore);
    for (const [i, id] of OLD_IDS.entries())
      expect(await activeCodeOf(h, NEW_IDS[i] ?? '')).toBe(codes.get(id));
    const entries = await runEntries(h, run.id);
    expect(
      entries
        .filter(e => e.entity === 'student' && e.action === 'update')
        .map(e => [e.before?.sourcedId, e.after?.sourcedId]),
    ).toEqual(OLD_IDS.map((id, i) => [id, NEW_IDS[i]]));
    expect(entries.filter(e => e.entity === 'code' && e.action === 'update')).toHaveLength(4);
    expect(entries.filter(e => e.action === 'deactivate')).toEqual([]);

    const again = await h.sync();
    expect(again.run.status).toBe('succeeded');
    expect(again.writes).toBe(0);
  });
});

describe('new students wait for finalize, which is safe to repeat', () => {
  let h: Harness;
  let sis: ScriptedConnector;
  beforeAll(async () => {
    ({ h, sis } = await start());
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a finalize that dies after creating them and runs again creates each new student once', async () => {
    sis.snapshot = district({});
    expect((await h.sync()).run.status).toBe('succeeded');
    const next = district({});
    next.students.push(scriptedStudent('20000', 'U20000', 'Eve'));
    next.relationships.push({ guardianSourcedId: 'G-2', studentSourcedId: '20000' });
    sis.snapshot = next;
    // a finalize step after the new students are written fails once (as a killed worker would)
    let failures = 0;
    const flaky = {
      name: 'test-flaky',
      run: () => (failures++ === 0 ? Promise.reject(new Error('killed')) : Promise.resolve()),
    };
    FINALIZE_HOOKS.push(flaky);
    try {
      const { run } = await h.sync();
      expect(failures).toBe(2);
      expect(run.status).toBe('succeeded');
      expect(run.counts.student).toEqual({ create: 1 });
      expect(run.counts.link).toEqual({ add: 1 });
      const entries = await runEntries(h, run.id);
      expect(entries.filter(e => e.entity === 'student').map(e => [e.action, e.entityId])).toEqual([
        ['create', '20000'],
      ]);
    } finally {
      FINALIZE_HOOKS.splice(FINALIZE_HOOKS.indexOf(flaky), 1);
    }
    expect(await activeStudents(h)).toEqual([...OLD_IDS, '20000']);
  });
});
