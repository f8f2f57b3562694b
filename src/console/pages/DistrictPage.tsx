/** A district's overview: configuration summary, trigger buttons, held and recent runs. */
import { Card, Group, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { DistrictDetail, RunList } from '../api/schemas';
import { ErrorAlert } from '../components/ErrorAlert';
import { CountsLine, RunStatus, TriggerButtons } from '../components/RunBits';
import { isActive, when } from '../format';
import { useApi } from '../hooks';
import { Link } from '../router';

export function DistrictPage({ districtId }: { districtId: string }) {
  const id = encodeURIComponent(districtId);
  const detail = useApi(`/districts/${id}`, DistrictDetail, { pollMs: 5000 });
  const active = detail.data?.activeRun ? isActive(detail.data.activeRun.status) : false;
  const runs = useApi(`/districts/${id}/runs?limit=20`, RunList, {
    pollMs: active ? 2000 : 10_000,
  });
  const d = detail.data;
  return (
    <Stack>
      <Title order={1} size="h2">
        {d?.name ?? districtId}
      </Title>
      <ErrorAlert error={detail.error} title="Could not load the district" />
      {d && (
        <>
          <TriggerButtons districtId={districtId} />
          <SimpleGrid cols={{ base: 1, md: 2 }}>
            <Card withBorder>
              <Title order={2} size="h4">
                Connector and schedule
              </Title>
              <Text size="sm">
                {d.connector.kind}
                {d.connector.baseUrl ? ` at ${d.connector.baseUrl}` : ''}
              </Text>
              <Text size="sm">
                Schedule:{' '}
                {d.schedule
                  ? `${d.schedule.cron} (${d.schedule.timezone}); next run ${when(d.schedule.nextRunAt)}`
                  : 'none (runs start from the console, the API or the CLI)'}
              </Text>
              <Text size="sm">Sync mode now: {d.syncMode}</Text>
            </Card>
            <Card withBorder>
              <Title order={2} size="h4">
                Policies
              </Title>
              <Text size="sm">
                Runs deactivating more than {d.policies.deletionThresholdPercent}% are held for
                approval.
              </Text>
              <Text size="sm">Parent role: {d.policies.parentRole}</Text>
              <Text size="sm">Add-only: {d.policies.addOnly ? 'yes' : 'no'}</Text>
              <Text size="sm">
                Freeze windows:{' '}
                {d.policies.freezeWindows.length
                  ? d.policies.freezeWindows
                      .map(f => `${f.from} – ${f.to} ${f.mode}${f.reason ? ` (${f.reason})` : ''}`)
                      .join('; ')
                  : 'none'}
              </Text>
            </Card>
          </SimpleGrid>
          {d.heldRuns.length > 0 && (
            <Card withBorder>
              <Title order={2} size="h4">
                Held runs waiting for approval
              </Title>
              {d.heldRuns.map(r => (
                <Group key={r.id}>
                  <Link to={`/districts/${id}/runs/${encodeURIComponent(r.id)}`}>{r.id}</Link>
                  <Text size="sm">
                    {r.held?.students ?? 0} students, {r.held?.parents ?? 0} parents,{' '}
                    {r.held?.links ?? 0} links would be deactivated
                  </Text>
                </Group>
              ))}
            </Card>
          )}
        </>
      )}
      <Title order={2} size="h3">
        Recent runs
      </Title>
      <ErrorAlert error={runs.error} title="Could not load the runs" />
      {runs.data && runs.data.items.length === 0 && <Text c="dimmed">No run yet.</Text>}
      {runs.data && runs.data.items.length > 0 && (
        <Table striped aria-label="Recent runs">
          <Table.Thead>
            <Table.Tr>
              <Table.Th scope="col">Run</Table.Th>
              <Table.Th scope="col">Status</Table.Th>
              <Table.Th scope="col">Started by</Table.Th>
              <Table.Th scope="col">Created</Table.Th>
              <Table.Th scope="col">Changes</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {runs.data.items.map(r => (
              <Table.Tr key={r.id}>
                <Table.Td>
                  <Link to={`/districts/${id}/runs/${encodeURIComponent(r.id)}`}>{r.id}</Link>
                </Table.Td>
                <Table.Td>
                  <RunStatus run={r} />
                </Table.Td>
                <Table.Td>{r.actor ?? r.trigger}</Table.Td>
                <Table.Td>{when(r.createdAt)}</Table.Td>
                <Table.Td>
                  <CountsLine run={r} />
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}
