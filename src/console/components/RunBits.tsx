/**
 * Small pieces that show runs: status badge, counts and timings tables, queue wait, a stalled
 * worker, trigger buttons.
 */
import { Alert, Badge, Button, Group, Table, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useState } from 'react';
import { apiSend, errorMessage } from '../api/client';
import { TriggerResult, type RunDetail, type RunSummary } from '../api/schemas';
import { actionLabel, duration, entityLabel, statusColor, timingLabel, when } from '../format';
import { navigate } from '../router';
import { AdminOnly } from '../session';

export function RunStatus({ run }: { run: Pick<RunSummary, 'status' | 'dryRun'> }) {
  return (
    <Group gap={4} component="span">
      <Badge color={statusColor(run.status)} data-testid="run-status">
        {run.status}
      </Badge>
      {run.dryRun && (
        <Badge color="gray" variant="outline">
          dry run
        </Badge>
      )}
    </Group>
  );
}

/** Counts of a run as "Students: 10 created, 2 updated". */
export function CountsLine({ run }: { run: RunSummary }) {
  const parts = Object.entries(run.counts).map(
    ([entity, actions]) =>
      `${entityLabel(entity)}: ${Object.entries(actions)
        .map(([a, n]) => `${n.toLocaleString()} ${actionLabel(a, entity)}`)
        .join(', ')}`,
  );
  return <Text size="sm">{parts.length ? parts.join(' · ') : 'no changes'}</Text>;
}

export function CountsTable({ run }: { run: RunSummary }) {
  const rows = Object.entries(run.counts).flatMap(([entity, actions]) =>
    Object.entries(actions).map(([action, n]) => ({ entity, action, n })),
  );
  if (!rows.length) return <Text c="dimmed">This run changed nothing.</Text>;
  return (
    <Table aria-label="Changes by entity and action" withTableBorder w="auto">
      <Table.Thead>
        <Table.Tr>
          <Table.Th scope="col">Records</Table.Th>
          <Table.Th scope="col">What happened</Table.Th>
          <Table.Th scope="col" ta="right">
            Number
          </Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {rows.map(r => (
          <Table.Tr key={`${r.entity}.${r.action}`}>
            <Table.Td>{entityLabel(r.entity)}</Table.Td>
            <Table.Td>{actionLabel(r.action, r.entity)}</Table.Td>
            <Table.Td ta="right">{r.n.toLocaleString()}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

export function TimingsTable({ run }: { run: RunSummary }) {
  const rows = Object.entries(run.timings);
  if (!rows.length) return <Text c="dimmed">No timings yet.</Text>;
  return (
    <Table aria-label="Timings by phase" withTableBorder w="auto">
      <Table.Thead>
        <Table.Tr>
          <Table.Th scope="col">Phase</Table.Th>
          <Table.Th scope="col" ta="right">
            Time
          </Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {rows.map(([k, ms]) => (
          <Table.Tr key={k}>
            <Table.Td>{timingLabel(k)}</Table.Td>
            <Table.Td ta="right">{duration(ms)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

/**
 * How long the run waited in queues: before its pull started (or so far, while queued) and,
 * once finalized, its chunks' average and longest wait to be applied.
 */
export function QueueWaitLine({ run }: { run: RunSummary }) {
  const w = run.queueWait;
  if (!w) return null;
  return (
    <Text size="sm" data-testid="queue-wait">
      {w.queued
        ? `Queued for ${duration(w.pullMs)} so far; the pull has not started.`
        : `Waited ${duration(w.pullMs)} in the queue before the pull started.`}
      {w.applyAvgMs !== undefined &&
        ` Chunks waited ${duration(w.applyAvgMs)} on average (longest ${duration(w.applyMaxMs)}) to be applied.`}
    </Text>
  );
}

/** A running run whose worker is not heard from: what, since when, when it is taken up. */
export function StalledAlert({ run }: { run: RunDetail }) {
  const s = run.stalled;
  if (!s) return null;
  return (
    <Alert color="orange" title="Worker not heard from" role="alert" data-testid="run-stalled">
      <Text size="sm">
        The {s.job === 'apply' ? 'chunk' : s.job} job of this run has not been renewed by its worker
        {s.worker ? ` (${s.worker})` : ''} for {duration(s.silentForMs)} (last heard{' '}
        {when(s.lastHeardAt)}){s.workerConnected ? '' : '; the worker is no longer connected'}.{' '}
        {s.takeoverExpectedBy
          ? `Another worker should take it up by ${when(s.takeoverExpectedBy)}.`
          : 'No worker is connected to take it up: start `guardian-sync worker`.'}
      </Text>
    </Alert>
  );
}

/** "Run sync" and "Dry run" (admins only); opens the new (or already active) run. */
export function TriggerButtons({ districtId }: { districtId: string }) {
  const [busy, setBusy] = useState<null | 'sync' | 'dry'>(null);
  const trigger = async (dryRun: boolean) => {
    setBusy(dryRun ? 'dry' : 'sync');
    try {
      const r = await apiSend(
        'POST',
        `/districts/${encodeURIComponent(districtId)}/syncs`,
        TriggerResult,
        {
          dryRun,
        },
      );
      notifications.show({
        message: r.started
          ? `${dryRun ? 'Dry run' : 'Sync'} ${r.run.id} started`
          : `Run ${r.run.id} was already ${r.run.status}; showing it`,
        color: r.started ? 'green' : 'yellow',
      });
      navigate(`/districts/${encodeURIComponent(districtId)}/runs/${encodeURIComponent(r.run.id)}`);
    } catch (e) {
      notifications.show({
        title: 'Could not start the run',
        message: errorMessage(e),
        color: 'red',
      });
    } finally {
      setBusy(null);
    }
  };
  return (
    <AdminOnly>
      <Group>
        <Button
          loading={busy === 'sync'}
          disabled={busy !== null}
          onClick={() => void trigger(false)}
        >
          Run sync now
        </Button>
        <Button
          variant="outline"
          loading={busy === 'dry'}
          disabled={busy !== null}
          onClick={() => void trigger(true)}
        >
          Dry run
        </Button>
      </Group>
    </AdminOnly>
  );
}
