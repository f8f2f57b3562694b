/**
 * End to end: a sync of the fake PowerSchool creates parent accounts → the change log records
 * them → the change-log consumer queues one email per new account → the notifications worker
 * delivers them to a real SMTP server. Then: a no-change resync, a deactivated-then-restored
 * account, a new guardian, a dry run and a held run.
 */
import {
  addGuardian,
  removeRelationship,
  touchDistrict,
  withdrawStudent,
} from '../../src/dev/district-generator.js';
import { startSmtpCatcher, type SmtpCatcher } from '../../src/dev/smtp-catcher.js';
import {
  ACTIVATION_COUNT,
  activations,
  releaseHeldActivations,
} from '../../src/jobs/notifications.js';
import { consumeChanges } from '../../src/jobs/changes.js';
import { approveRun } from '../../src/jobs/sync.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { withoutExclusions } from '../../src/jobs/rejects.js';

describe('sync → activation emails', () => {
  let h: Harness;
  let smtp: SmtpCatcher;

  const idle = async () => {
    const c = await h.ctx.queues.notifications.getJobCounts('waiting', 'active', 'delayed');
    return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0;
  };
  const accountOf = async (contactId: number) =>
    (await h.store.getParents(h.districtId)).find(p =>
      p.sources.some(s => s.sourcedId === String(contactId)),
    );

  beforeAll(async () => {
    smtp = await startSmtpCatcher();
    h = await startHarness({
      students: 120,
      seed: 8,
      // pooled connections, as a production setup would use (`?pool=true`)
      env: { SMTP_URL: `${smtp.url}?pool=true&maxConnections=4` },
      district: {
        notifications: {
          activationEmails: true,
          portalBaseUrl: 'https://portal.test/activate',
          from: 'no-reply@test-district.example',
        },
        // accounts without email are created (and get no email): what this file checks
        policies: { guardiansWithoutLogin: 'create' },
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await smtp?.close();
  });

  it('the first sync sends one email per new parent account with an email', async () => {
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const created = (await h.store.getParents(h.districtId)).filter(p => p.status === 'active');
    expect(run.counts.parent?.create).toBe(created.length);
    const withEmail = created.filter(p => p.email);
    const noEmail = created.filter(p => !p.email);
    expect(noEmail.length).toBeGreaterThan(0); // the generator leaves some guardians without email
    // emails come from the change log, whoever consumes it first (the worker or this call)
    await consumeChanges(h.ctx, h.districtId);
    await smtp.waitForAccepted(withEmail.length);
    const recipients = smtp.messages.flatMap(m => m.recipients).sort();
    expect(recipients).toEqual(withEmail.map(p => p.email!).sort());
    // each email names every child linked to its account
    const repo = await activations(h.ctx);
    let multiChild = 0;
    for (const p of withEmail) {
      const m = smtp.messages.find(x => x.recipients[0] === p.email);
      const children = await repo.children(h.districtId, p.id);
      if (children.length > 1) multiChild++;
      for (const c of children) expect(m?.text).toContain(`${c.givenName} ${c.familyName}`);
      expect(m?.text).toMatch(/https:\/\/portal\.test\/activate\?token=[A-Za-z0-9_-]{43}/);
    }
    expect(multiChild).toBeGreaterThan(0);
    // the worker records `sent` right after the server's reply
    const deadline = Date.now() + 10000;
    let summary = await repo.counts(h.districtId, new Date().toISOString());
    while (summary.sent < withEmail.length && Date.now() < deadline) {
      await new Promise(r => setTimeout(r, 25));
      summary = await repo.counts(h.districtId, new Date().toISOString());
    }
    expect(summary).toMatchObject({
      sent: withEmail.length,
      'no-email': noEmail.length,
      queued: 0,
    });
    expect(await idle()).toBe(true);
  });

  it('a no-change resync and a deactivated-then-restored account send nothing', async () => {
    const before = smtp.stats.accepted;
    const again = await h.sync();
    // no changes (what the snapshot leaves out by rule is reported on every run)
    expect(withoutExclusions(again.run.counts)).toEqual({});

    // a guardian whose account exists: drop all their relationships, then bring them back
    const contact = h.sis.contacts.find(
      c =>
        c.email &&
        c.links.length > 0 &&
        c.links.every(l => l.canAccessData && l.detailActive) &&
        h.sis.contacts.filter(o => o.personKey === c.personKey).length === 1,
    );
    if (!contact) throw new Error('fixture lacks a single-entry guardian');
    const account = await accountOf(contact.contactId);
    expect(account?.status).toBe('active');
    const saved = [...contact.links];
    for (const l of saved) removeRelationship(h.sis, contact.contactId, l.studentDcid);
    const gone = await h.sync();
    expect(gone.run.counts.parent?.deactivate).toBe(1);
    expect((await accountOf(contact.contactId))?.status).toBe('inactive');
    contact.links = saved;
    touchDistrict(h.sis);
    const back = await h.sync();
    expect(back.run.counts.parent?.reactivate).toBe(1);
    expect((await consumeChanges(h.ctx, h.districtId)).activation.queued).toBe(0);
    expect((await accountOf(contact.contactId))?.id).toBe(account?.id);
    expect(await idle()).toBe(true);
    expect(smtp.stats.accepted).toBe(before);
  });

  it('a dry run counts what it would send and sends nothing; a real run sends it', async () => {
    const student = h.sis.students[3]!;
    const before = smtp.stats.accepted;
    const g = addGuardian(h.sis, student.id);
    const dry = await h.sync({ dryRun: true });
    expect(dry.run.counts.activation).toEqual({ [ACTIVATION_COUNT.planned]: 1 });
    expect(await idle()).toBe(true);
    expect(smtp.stats.accepted).toBe(before);

    const real = await h.sync();
    expect(real.run.counts.parent?.create).toBe(1);
    await consumeChanges(h.ctx, h.districtId);
    await smtp.waitForAccepted(before + 1);
    const m = smtp.messages[smtp.messages.length - 1];
    expect(m?.recipients).toEqual([g.email]);
    expect(m?.text).toContain(student.first_name);
  });

  it('a run held by the deletion safeguard keeps its emails back until it is approved', async () => {
    const before = smtp.stats.accepted;
    for (const s of h.sis.students.slice(40, 60)) withdrawStudent(h.sis, s.id); // 20 of 120
    const g = addGuardian(h.sis, h.sis.students[5]!.id);
    const held = await h.sync();
    expect(held.run.status).toBe('needs-approval');
    expect(held.run.counts.student?.['deactivate-held']).toBe(20);
    expect(held.run.counts.student?.deactivate).toBeUndefined();
    await consumeChanges(h.ctx, h.districtId);
    const account = await accountOf(g.contactId);
    const repo = await activations(h.ctx);
    expect((await repo.get(h.districtId, account!.id))?.status).toBe('held');
    expect(await idle()).toBe(true);
    expect(smtp.stats.accepted).toBe(before);

    // approving the run releases its held activation emails
    const approved = await approveRun(h.ctx, held.run.id, 'cli:alice');
    expect(approved.decidedBy).toBe('cli:alice');
    expect(approved.counts.student?.deactivate).toBe(20);
    expect(approved.counts.student?.['deactivate-held']).toBeUndefined();
    await smtp.waitForAccepted(before + 1);
    expect(smtp.messages[smtp.messages.length - 1]?.recipients).toEqual([g.email]);
    expect(await releaseHeldActivations(h.ctx, h.districtId, held.run.id)).toBe(0);
  });
});
