/**
 * Page 2: one run. Counts with labels, timings, rejects and exclusions (server-paged, CSV),
 * the records a held run would deactivate or unlink (server-paged, CSV) with approve/discard,
 * live progress while queued or running (polling), the queue wait, and a warning when the
 * run's worker is not heard from (`stalled`).
 */
import { Alert, Card, Group, Stack, Tabs, Text, Title } from '@mantine/core';
import { useState } from 'react';
import { apiSend } from '../api/client';
import { HeldDecision, HeldItem, RejectItem, RunDetail } from '../api/schemas';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorAlert } from '../components/ErrorAlert';
import { PagedTable } from '../components/PagedTable';
import {
  CountsTable,
  QueueWaitLine,
  RunStatus,
  StalledAlert,
  TimingsTable,
  TriggerButtons,
} from '../components/RunBits';
import { isActive, when } from '../format';
import { useApi } from '../hooks';
import { AdminOnly } from '../session';

const HELD_LISTS = [
  { list: 'students', label: 'Students' },
  { list: 'parents', label: 'Parents' },
  { list: 'links', label: 'Links' },
] as const;

function HeldSection({ run, onDecided }: { run: RunDetail; onDecided: () => void }) {
  const held = run.held;
  if (!held) return null;
  const base = `/runs/${encodeURIComponent(run.id)}`;
  const pending = run.status === 'needs-approval';
  const decide = async (decision: 'approve' | 'discard') => {
    await apiSend('POST', `${base}/${decision}`, HeldDecision);
    onDecided();
  };
  return (
    <Card withBorder component="section" aria-labelledby="held-title">
      <Stack>
        <Title order={2} size="h3" id="held-title">
          {pending ? 'Held for approval' : 'Held deactivations'}
        </Title>
        <Text>
          {pending
            ? 'The deletion safeguard held this run. Approving deactivates or unlinks exactly the records listed below; discarding drops them (nothing is deactivated).'
            : `These records were held by the deletion safeguard.${run.decidedBy ? ` Decided by ${run.decidedBy} on ${when(run.decidedAt)}.` : ''}`}
        </Text>
        {pending && (
          <AdminOnly>
            <Group>
              <ConfirmButton
                color="red"
                title="Approve the held run"
                message={`This deactivates ${held.students.toLocaleString()} students, ${held.parents.toLocaleString()} parents and removes ${held.links.toLocaleString()} links, as listed. It is recorded with your name.`}
                confirmLabel="Approve and apply"
                onConfirm={() => decide('approve')}
                done="Run approved"
              >
                Approve
              </ConfirmButton>
              <ConfirmButton
                variant="outline"
                title="Discard the held changes"
                message="Nothing listed is deactivated or unlinked; the next run decides again. It is recorded with your name."
                confirmLabel="Discard"
                onConfirm={() => decide('discard')}
                done="Held changes discarded"
              >
                Discard
              </ConfirmButton>
            </Group>
          </AdminOnly>
        )}
        <Tabs defaultValue="students">
          <Tabs.List>
            {HELD_LISTS.map(h => (
              <Tabs.Tab key={h.list} value={h.list}>
                {h.label} ({held[h.list].toLocaleString()})
              </Tabs.Tab>
            ))}
          </Tabs.List>
          {HELD_LISTS.map(h => (
            <Tabs.Panel key={h.list} value={h.list} pt="sm">
              <PagedTable
                caption={`Held ${h.list}`}
                path={`${base}/held/${h.list}`}
                item={HeldItem}
                refreshKey={run.status}
                columns={
                  h.list === 'students'
                    ? [
                        { key: 'studentName', label: 'Student' },
                        { key: 'studentUniqueId', label: 'Unique ID' },
                        { key: 'reason', label: 'Why' },
                      ]
                    : h.list === 'parents'
                      ? [
                          { key: 'parentName', label: 'Parent' },
                          { key: 'parentUniqueId', label: 'Unique ID' },
                          { key: 'parentEmail', label: 'Email' },
                          { key: 'reason', label: 'Why' },
                        ]
                      : [
                          { key: 'parentName', label: 'Parent' },
                          { key: 'parentUniqueId', label: 'Parent Unique ID' },
                          { key: 'studentName', label: 'Student' },
                          { key: 'studentUniqueId', label: 'Student Unique ID' },
                          { key: 'reason', label: 'Why' },
                        ]
                }
                csv={() => `${base}/held/${h.list}.csv`}
                empty={`No ${h.list} held.`}
              />
            </Tabs.Panel>
          ))}
        </Tabs>
      </Stack>
    </Card>
  );
}

export function RunPage({ districtId, runId }: { districtId: string; runId: string }) {
  const [polling, setPolling] = useState(true);
  const run = useApi(`/runs/${encodeURIComponent(runId)}`, RunDetail, {
    pollMs: polling ? 1500 : undefined,
  });
  const r = run.data;
  if (r && polling && !isActive(r.status)) setPolling(false);
  if (r && !polling && isActive(r.status)) setPolling(true);
  const base = `/runs/${encodeURIComponent(runId)}`;
  return (
    <Stack>
      <Title order={1} size="h2">
        Run {runId}
      </Title>
      <ErrorAlert error={run.error} title="Could not load the run" />
      {r && r.districtId !== districtId && (
        <Alert color="red" role="alert">
          This run belongs to district {r.districtId}, not {districtId}.
        </Alert>
      )}
      {r && r.districtId === districtId && (
        <>
          <Group>
            <RunStatus run={r} />
            {isActive(r.status) && (
              <Text size="sm" aria-live="polite">
                In progress; this page updates by itself.
              </Text>
            )}
          </Group>
          <StalledAlert run={r} />
          <Card withBorder>
            <Text size="sm">
              Started by {r.actor ?? r.trigger} · created {when(r.createdAt)} · started{' '}
              {when(r.startedAt)} · finished {when(r.finishedAt)}
            </Text>
            <QueueWaitLine run={r} />
            {r.decidedBy && (
              <Text size="sm" data-testid="decided">
                Decided by {r.decidedBy} on {when(r.decidedAt)}
              </Text>
            )}
            {r.waiting && (
              <Text size="sm">
                Waiting for the SIS until {when(r.waiting.until)}: {r.waiting.reason}
              </Text>
            )}
            {r.waitingForWorkerSince && (
              <Text size="sm" c="orange.9">
                Queued since {when(r.waitingForWorkerSince)} and no worker is connected: start
                `guardian-sync worker`.
              </Text>
            )}
            {r.error && (
              <Text size="sm" c="red.8">
                Error: {r.error}
              </Text>
            )}
          </Card>
          {!isActive(r.status) && <TriggerButtons districtId={districtId} />}
          <Group align="flex-start" gap="xl">
            <Stack gap="xs">
              <Title order={2} size="h3">
                Changes
              </Title>
              <CountsTable run={r} />
            </Stack>
            <Stack gap="xs">
              <Title order={2} size="h3">
                Timings
              </Title>
              <TimingsTable run={r} />
            </Stack>
          </Group>
          <HeldSection run={r} onDecided={run.reload} />
          <Stack component="section" aria-labelledby="rejects-title">
            <Title order={2} size="h3" id="rejects-title">
              Rejects and exclusions
            </Title>
            <PagedTable
              caption="Rejects and exclusions"
              path={`${base}/rejects`}
              item={RejectItem}
              refreshKey={r.status}
              filters={[
                {
                  kind: 'select',
                  name: 'kind',
                  label: 'Show',
                  options: [
                    { value: 'rejected', label: 'Rejected (invalid)' },
                    { value: 'excluded', label: 'Excluded (by a rule)' },
                  ],
                },
              ]}
              columns={[
                { key: 'entity', label: 'Record type' },
                { key: 'recordId', label: 'SIS record' },
                { key: 'kind', label: 'Kind' },
                { key: 'reason', label: 'Reason' },
              ]}
              csv={q => `${base}/rejects.csv${q ? `?${q}` : ''}`}
              empty="Nothing was rejected or excluded."
            />
          </Stack>
        </>
      )}
    </Stack>
  );
}
