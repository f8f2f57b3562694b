/**
 * The sandbox (issue 16, point 1): a persistent fake SIS in a temp folder, synced for real
 * through the harness (real Redis, SQLite, workers), changed by a scripted change, synced
 * again; its state survives a restart; a mass withdrawal is held by the safeguard.
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  applySandboxChange,
  mergeEnvFile,
  startSandbox,
  type SandboxSis,
} from '../../src/dev/sandbox.js';
import type { RosterStore } from '../../src/models/types.js';
import { startSisHarness } from '../helpers/sis-harness.js';

jest.setTimeout(240_000);

const tempDirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'gsync-sandbox-'));
  tempDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

async function activeParentEmails(store: RosterStore, districtId: string): Promise<string[]> {
  return (await store.getParents(districtId))
    .filter(p => p.status === 'active')
    .map(p => p.emailNormalized ?? '');
}
async function studentStatus(store: RosterStore, districtId: string, uniqueId: string) {
  return (await store.getStudents(districtId)).find(s => s.uniqueId === uniqueId)?.status;
}

describe('sandbox: PowerSchool served from a persistent state', () => {
  it('syncs, serves a scripted change, keeps it across a restart, and trips the safeguard', async () => {
    const dir = join(tempDir(), 'powerschool');
    let sandbox = await startSandbox({ dir, sis: 'powerschool', students: 120, port: 0 });
    const h = await startSisHarness({ district: sandbox.district, secrets: sandbox.env });
    try {
      const first = await h.sync();
      expect(first.run.status).toBe('succeeded');
      expect(first.run.counts.student?.create).toBe(120);

      const added = await applySandboxChange(dir, 'new-guardian');
      expect(added.served).toBe('served');
      const email = added.subjects.guardianEmail ?? '';
      expect(email).toContain('@');
      expect(await activeParentEmails(h.store, h.districtId)).not.toContain(email);
      const second = await h.sync();
      expect(second.run.status).toBe('succeeded');
      expect(second.run.counts.parent?.create).toBe(1);
      expect(second.run.counts.link?.add).toBe(1);
      expect(await activeParentEmails(h.store, h.districtId)).toContain(email);

      // Restart: the district is rebuilt from state.json with the change; nothing to write.
      await sandbox.close();
      sandbox = await startSandbox({ dir, sis: 'powerschool', port: 0 });
      expect(sandbox.changesApplied()).toBe(1);
      h.reconfigure(sandbox.district);
      const third = await h.sync();
      expect(third.run.status).toBe('succeeded');
      expect(third.writes).toBe(0);

      const mass = await applySandboxChange(dir, 'mass-withdraw');
      expect(mass.served).toBe('served');
      expect(mass.subjects.studentUniqueIds).toHaveLength(30);
      const held = await h.sync();
      expect(held.run.status).toBe('needs-approval');
    } finally {
      await h.close();
      await sandbox.close();
    }
  });

  it('a change scripted while no sandbox runs is saved and served at the next start', async () => {
    const dir = join(tempDir(), 'powerschool');
    const sandbox = await startSandbox({ dir, sis: 'powerschool', students: 30, port: 0 });
    await sandbox.close();
    const r = await applySandboxChange(dir, 'withdraw-student', { waitMs: 300 });
    expect(r.served).toBe('not-running');
    const again = await startSandbox({ dir, sis: 'powerschool', port: 0 });
    try {
      expect(again.changesApplied()).toBe(1);
      expect(again.counts().activeStudents).toBe(29);
    } finally {
      await again.close();
    }
  });

  it('refuses to resume with another size or SIS unless reset', async () => {
    const dir = join(tempDir(), 'powerschool');
    const sandbox = await startSandbox({ dir, sis: 'powerschool', students: 20, port: 0 });
    await sandbox.close();
    await expect(startSandbox({ dir, sis: 'powerschool', students: 40, port: 0 })).rejects.toThrow(
      /has 20 students, not 40; add --reset/,
    );
    await expect(startSandbox({ dir, sis: 'aeries', port: 0 })).rejects.toThrow(/sis powerschool/);
    const fresh = await startSandbox({
      dir,
      sis: 'powerschool',
      students: 40,
      port: 0,
      reset: true,
    });
    expect(fresh.counts().students).toBe(40);
    try {
      const port = Number(new URL(fresh.location).port);
      await expect(
        startSandbox({ dir: join(tempDir(), 'other'), sis: 'powerschool', port }),
      ).rejects.toThrow(`port ${port} on 127.0.0.1 is in use`);
    } finally {
      await fresh.close();
    }
  });
});

describe('sandbox: OneRoster CSV files', () => {
  it('syncs the files, rewrites them on a withdrawal, syncs the change', async () => {
    const dir = join(tempDir(), 'oneroster-csv');
    const sandbox = await startSandbox({ dir, sis: 'oneroster-csv', students: 100 });
    expect(existsSync(join(dir, 'files', 'manifest.csv'))).toBe(true);
    const h = await startSisHarness({ district: sandbox.district, secrets: sandbox.env });
    try {
      const first = await h.sync();
      expect(first.run.status).toBe('succeeded');
      expect(first.run.counts.student?.create).toBe(100);

      const w = await applySandboxChange(dir, 'withdraw-student');
      expect(w.served).toBe('files-written');
      const uniqueId = w.subjects.studentUniqueIds[0] ?? '';
      expect(await studentStatus(h.store, h.districtId, uniqueId)).toBe('active');
      const second = await h.sync();
      expect(second.run.status).toBe('succeeded');
      expect(second.run.counts.student?.deactivate).toBe(1);
      expect(await studentStatus(h.store, h.districtId, uniqueId)).toBe('inactive');
    } finally {
      await h.close();
      await sandbox.close();
    }
  });
});

describe.each<SandboxSis>(['infinite-campus', 'skyward', 'aeries', 'eschoolplus'])(
  'sandbox: %s',
  sis => {
    it('syncs its district file and a new guardian', async () => {
      const dir = join(tempDir(), sis);
      const sandbox = await startSandbox({ dir, sis, students: 60, port: 0 });
      const h = await startSisHarness({ district: sandbox.district, secrets: sandbox.env });
      try {
        const first = await h.sync();
        expect(first.run.status).toBe('succeeded');
        expect(first.run.counts.student?.create).toBe(60);
        const added = await applySandboxChange(dir, 'new-guardian');
        expect(['served', 'files-written']).toContain(added.served);
        const second = await h.sync();
        expect(second.run.status).toBe('succeeded');
        expect(second.run.counts.parent?.create).toBe(1);
        expect(await activeParentEmails(h.store, h.districtId)).toContain(
          added.subjects.guardianEmail,
        );
      } finally {
        await h.close();
        await sandbox.close();
      }
    });
  },
);

describe('npm run sandbox (CLI)', () => {
  it('writes the district file and adds only the missing .env entries', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, '.env'), 'LOG_LEVEL=warn\n');
    const repo = process.cwd();
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (done, fail) => {
        const child = spawn(
          process.execPath,
          [
            '--import',
            // from another folder: tsx by path, as `--import tsx` resolves from the cwd
            pathToFileURL(join(repo, 'node_modules/tsx/dist/loader.mjs')).href,
            join(repo, 'src/cli/main.ts'),
            'sandbox',
            '--sis',
            'oneroster-csv',
            '--students',
            '40',
          ],
          { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' } },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', fail);
        child.on('close', code => done({ code, stdout, stderr }));
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('npm run cli -- sync sandbox-oneroster-csv --wait');
    const file = JSON.parse(
      readFileSync(join(cwd, 'config/districts/sandbox-oneroster-csv.json'), 'utf8'),
    ) as { id: string; connector: { source: { path: string } } };
    expect(file.id).toBe('sandbox-oneroster-csv');
    expect(resolve(cwd, file.connector.source.path)).toBe(
      join(cwd, 'data/sandbox/oneroster-csv/files'),
    );
    // no credentials needed for files: .env untouched
    expect(readFileSync(join(cwd, '.env'), 'utf8')).toBe('LOG_LEVEL=warn\n');
  });
});

describe('mergeEnvFile', () => {
  it('adds missing entries, keeps existing ones, reports different values', () => {
    const path = join(tempDir(), '.env');
    writeFileSync(path, 'A=1\nB="old value"');
    const r = mergeEnvFile(path, { A: '1', B: 'new', C: 'x y' }, 'sandbox');
    expect(r).toEqual({ added: ['C'], present: ['A'], conflicts: [{ name: 'B', wanted: 'new' }] });
    expect(readFileSync(path, 'utf8')).toBe('A=1\nB="old value"\n# sandbox\nC=x y\n');
    expect(mergeEnvFile(path, { C: 'x y' }, 'sandbox').present).toEqual(['C']);
  });
});
