/** Page 1: every district the token may see, with its connector, runs, schedule and freezes. */
import { Badge, Card, Group, List, SimpleGrid, Skeleton, Stack, Text, Title } from '@mantine/core';
import { DistrictDetail, DistrictList, type DistrictSummary } from '../api/schemas';
import { ErrorAlert } from '../components/ErrorAlert';
import { CountsLine, RunStatus } from '../components/RunBits';
import { isActive, when } from '../format';
import { useApi } from '../hooks';
import { Link } from '../router';

function DistrictCard({ summary }: { summary: DistrictSummary }) {
  const id = encodeURIComponent(summary.id);
  const detail = useApi(`/districts/${id}`, DistrictDetail, { pollMs: 10_000 });
  const d = detail.data;
  return (
    <Card
      withBorder
      component="section"
      aria-labelledby={`district-${summary.id}`}
      data-testid={`district-card-${summary.id}`}
    >
      <Stack gap="xs">
        <Group justify="space-between">
          <Title order={2} size="h4" id={`district-${summary.id}`}>
            <Link to={`/districts/${id}`}>{summary.name}</Link>
          </Title>
          <Badge variant="light">{summary.connector.kind}</Badge>
        </Group>
        <Text size="sm">Sync mode: {summary.syncMode}</Text>
        <Text size="sm">
          Next scheduled run:{' '}
          {summary.schedule
            ? `${when(summary.schedule.nextRunAt)} (${summary.schedule.cron}, ${summary.schedule.timezone}${summary.schedule.installed ? '' : '; not installed: no worker has started'})`
            : 'no schedule'}
        </Text>
        <ErrorAlert error={detail.error} />
        {!d && !detail.error && <Skeleton h={60} />}
        {d && (
          <>
            <div>
              <Text size="sm" fw={600}>
                Last run
              </Text>
              {d.lastRun ? (
                <Stack gap={2}>
                  <Group gap="xs">
                    <RunStatus run={d.lastRun} />
                    <Link to={`/districts/${id}/runs/${encodeURIComponent(d.lastRun.id)}`}>
                      {when(d.lastRun.finishedAt ?? d.lastRun.createdAt)}
                    </Link>
                  </Group>
                  <CountsLine run={d.lastRun} />
                </Stack>
              ) : (
                <Text size="sm" c="dimmed">
                  No run yet.
                </Text>
              )}
            </div>
            {d.activeRun &&
              !(d.lastRun && d.lastRun.id === d.activeRun.id && !isActive(d.lastRun.status)) && (
                <Text size="sm">
                  Active:{' '}
                  <Link to={`/districts/${id}/runs/${encodeURIComponent(d.activeRun.id)}`}>
                    {d.activeRun.id}
                  </Link>{' '}
                  ({d.activeRun.status})
                </Text>
              )}
            <div>
              <Text size="sm" fw={600}>
                Held runs waiting for approval
              </Text>
              {d.heldRuns.length ? (
                <List size="sm">
                  {d.heldRuns.map(r => (
                    <List.Item key={r.id}>
                      <Link to={`/districts/${id}/runs/${encodeURIComponent(r.id)}`}>{r.id}</Link> (
                      {when(r.finishedAt ?? r.createdAt)}: {r.held?.students ?? 0} students,{' '}
                      {r.held?.parents ?? 0} parents, {r.held?.links ?? 0} links held)
                    </List.Item>
                  ))}
                </List>
              ) : (
                <Text size="sm" c="dimmed">
                  None.
                </Text>
              )}
            </div>
          </>
        )}
        <div>
          <Text size="sm" fw={600}>
            Freeze windows
          </Text>
          {summary.policies.freezeWindows.length ? (
            <List size="sm">
              {summary.policies.freezeWindows.map(f => (
                <List.Item key={`${f.from}-${f.to}`}>
                  {f.from} – {f.to}: {f.mode}
                  {f.reason ? ` (${f.reason})` : ''}
                </List.Item>
              ))}
            </List>
          ) : (
            <Text size="sm" c="dimmed">
              None.
            </Text>
          )}
        </div>
      </Stack>
    </Card>
  );
}

export function DistrictsPage() {
  const list = useApi('/districts', DistrictList);
  return (
    <Stack>
      <Title order={1} size="h2">
        Districts
      </Title>
      <ErrorAlert error={list.error} />
      {list.data && list.data.items.length === 0 && (
        <Text>This token may see no configured district.</Text>
      )}
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        {list.data?.items.map(d => (
          <DistrictCard key={d.id} summary={d} />
        ))}
      </SimpleGrid>
    </Stack>
  );
}
