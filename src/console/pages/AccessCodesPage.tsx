/**
 * Access codes: the district's settings (enable, default role, who gets codes), the district
 * CSV and one section's CSV, resetting one student's code or every code (a dialog says what
 * happens), a student's codes, and the recorded resets. Everything that shows or changes codes
 * is admin-only (as in the API); viewers see the settings and the reset history.
 */
import {
  Anchor,
  Button,
  Card,
  Group,
  Select,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useEffect, useState } from 'react';
import { apiGet, apiSend, errorMessage } from '../api/client';
import { CodeSettings, ResetList, ResetResult, Sections, StudentCodes } from '../api/page-schemas';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorAlert } from '../components/ErrorAlert';
import { when } from '../format';
import { useApi } from '../hooks';
import { AdminOnly, usePrincipal } from '../session';
import type { z } from 'zod';

export function AccessCodesPage({ districtId }: { districtId: string }) {
  const d = encodeURIComponent(districtId);
  const { isAdmin } = usePrincipal();
  const [version, setVersion] = useState(0);
  const settings = useApi(`/districts/${d}/access-codes/settings`, CodeSettings, {
    refreshKey: version,
  });
  const resets = useApi(`/districts/${d}/access-codes/resets?limit=20`, ResetList, {
    refreshKey: version,
  });
  const sections = useApi(`/districts/${d}/sections`, Sections);
  const [section, setSection] = useState<string | null>(null);
  const [uniqueId, setUniqueId] = useState('');
  const [codes, setCodes] = useState<z.infer<typeof StudentCodes> | null>(null);
  const [codesError, setCodesError] = useState<unknown>(undefined);

  const showCodes = async () => {
    setCodes(null);
    setCodesError(undefined);
    try {
      setCodes(
        await apiGet(
          `/districts/${d}/students/${encodeURIComponent(uniqueId.trim())}/access-codes`,
          StudentCodes,
        ),
      );
    } catch (e) {
      setCodesError(e);
    }
  };

  return (
    <Stack>
      <Title order={1} size="h2">
        Access codes
      </Title>
      <ErrorAlert error={settings.error} title="Could not load the settings" />
      {settings.data && (
        <SettingsCard
          districtId={districtId}
          settings={settings.data}
          editable={isAdmin}
          onSaved={() => setVersion(v => v + 1)}
        />
      )}
      <AdminOnly>
        <Card withBorder>
          <Stack gap="sm">
            <Title order={2} size="h4">
              Download codes
            </Title>
            <Anchor href={`/districts/${d}/access-codes.csv`} download>
              Download the district's codes (CSV)
            </Anchor>
            <ErrorAlert error={sections.error} title="Could not load the sections" />
            {sections.data && sections.data.items.length === 0 && (
              <Text c="dimmed">This district has no course sections.</Text>
            )}
            {sections.data && sections.data.items.length > 0 && (
              <Group align="flex-end">
                <Select
                  label="Section"
                  searchable
                  value={section}
                  onChange={setSection}
                  data={sections.data.items.map(s => ({
                    value: s.sourcedId,
                    label: `${s.title} (${s.students} students)`,
                  }))}
                  w={360}
                />
                {section && (
                  <Anchor
                    href={`/districts/${d}/sections/${encodeURIComponent(section)}/access-codes.csv`}
                    download
                  >
                    Download this section's codes (CSV)
                  </Anchor>
                )}
              </Group>
            )}
          </Stack>
        </Card>
        <Card withBorder>
          <Stack gap="sm">
            <Title order={2} size="h4">
              A student's codes
            </Title>
            <form
              onSubmit={e => {
                e.preventDefault();
                if (uniqueId.trim()) void showCodes();
              }}
            >
              <Group align="flex-end">
                <TextInput
                  label="Student Unique ID"
                  value={uniqueId}
                  onChange={e => setUniqueId(e.currentTarget.value)}
                  w={240}
                />
                <Button type="submit" variant="default" disabled={!uniqueId.trim()}>
                  Show codes
                </Button>
                <ConfirmButton
                  color="orange"
                  disabled={!uniqueId.trim()}
                  title="Reset this student's code?"
                  message={
                    <Text>
                      The access code of student {uniqueId.trim()} stops working now and a new code
                      is issued. Parents who already used the old code stay linked. Print or
                      download the new code for the family. The reset is recorded with your name.
                    </Text>
                  }
                  confirmLabel="Reset the code"
                  done="The student's code was reset."
                  onConfirm={async () => {
                    const r = await apiSend(
                      'POST',
                      `/districts/${d}/access-codes/resets`,
                      ResetResult,
                      {
                        uniqueIds: [uniqueId.trim()],
                      },
                    );
                    if (r.notFound.length > 0)
                      throw new Error(`No student with Unique ID ${r.notFound.join(', ')}.`);
                    setVersion(v => v + 1);
                    await showCodes();
                  }}
                >
                  Reset this student's code
                </ConfirmButton>
              </Group>
            </form>
            <ErrorAlert error={codesError} title="Could not load the codes" />
            {codes && codes.codes.length === 0 && (
              <Text c="dimmed">This student has no code yet.</Text>
            )}
            {codes && codes.codes.length > 0 && (
              <Table aria-label="The student's codes">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th scope="col">Code</Table.Th>
                    <Table.Th scope="col">Status</Table.Th>
                    <Table.Th scope="col">Issued</Table.Th>
                    <Table.Th scope="col">Revoked</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {codes.codes.map(c => (
                    <Table.Tr key={`${c.formatted}:${c.createdAt}`}>
                      <Table.Td ff="monospace">{c.formatted}</Table.Td>
                      <Table.Td>{c.status}</Table.Td>
                      <Table.Td>{when(c.createdAt)}</Table.Td>
                      <Table.Td>{c.revokedAt ? when(c.revokedAt) : ''}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            )}
          </Stack>
        </Card>
        <Card withBorder>
          <Stack gap="sm">
            <Title order={2} size="h4">
              Reset every code
            </Title>
            <Text size="sm">
              For a leaked list or a new school year: every student's code is replaced.
            </Text>
            <Group>
              <ConfirmButton
                color="red"
                title="Reset every access code of the district?"
                message={
                  <Text>
                    Every code of every student in district {districtId} stops working now and each
                    student gets a new code. Families who have not registered yet need the new
                    codes: download the district CSV afterwards. Parents already linked stay linked.
                    The reset is recorded with your name.
                  </Text>
                }
                confirmLabel="Reset all codes"
                done="Every code was reset."
                onConfirm={async () => {
                  await apiSend('POST', `/districts/${d}/access-codes/resets`, ResetResult, {
                    all: true,
                  });
                  setVersion(v => v + 1);
                }}
              >
                Reset all codes
              </ConfirmButton>
            </Group>
          </Stack>
        </Card>
      </AdminOnly>
      <Title order={2} size="h3">
        Recorded resets
      </Title>
      <ErrorAlert error={resets.error} title="Could not load the resets" />
      {resets.data && resets.data.items.length === 0 && (
        <Text c="dimmed">No code was reset yet.</Text>
      )}
      {resets.data && resets.data.items.length > 0 && (
        <Table striped aria-label="Recorded resets">
          <Table.Thead>
            <Table.Tr>
              <Table.Th scope="col">When</Table.Th>
              <Table.Th scope="col">Who</Table.Th>
              <Table.Th scope="col">Scope</Table.Th>
              <Table.Th scope="col">Revoked</Table.Th>
              <Table.Th scope="col">Issued</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {resets.data.items.map(r => (
              <Table.Tr key={r.id}>
                <Table.Td>{when(r.at)}</Table.Td>
                <Table.Td>{r.actor}</Table.Td>
                <Table.Td>{r.scope}</Table.Td>
                <Table.Td>{r.revoked}</Table.Td>
                <Table.Td>{r.issued}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

function SettingsCard(props: {
  districtId: string;
  settings: CodeSettings;
  editable: boolean;
  onSaved(): void;
}) {
  const e = props.settings.effective;
  const [enabled, setEnabled] = useState(e.enabled);
  const [role, setRole] = useState(e.defaultRole);
  const [issueTo, setIssueTo] = useState<string>(e.issueTo);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setEnabled(e.enabled);
    setRole(e.defaultRole);
    setIssueTo(e.issueTo);
  }, [e.enabled, e.defaultRole, e.issueTo]);
  const save = async () => {
    setBusy(true);
    try {
      await apiSend(
        'PATCH',
        `/districts/${encodeURIComponent(props.districtId)}/access-codes/settings`,
        CodeSettings,
        { enabled, defaultRole: role.trim(), issueTo },
      );
      notifications.show({ color: 'green', message: 'Access-code settings saved.' });
      props.onSaved();
    } catch (err) {
      notifications.show({ color: 'red', title: 'Not saved', message: errorMessage(err) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Title order={2} size="h4">
          Settings
        </Title>
        <Switch
          label="Parents can register with access codes"
          checked={enabled}
          disabled={!props.editable}
          onChange={ev => setEnabled(ev.currentTarget.checked)}
        />
        <TextInput
          label="Role of accounts created with a code"
          value={role}
          readOnly={!props.editable}
          onChange={ev => setRole(ev.currentTarget.value)}
          w={280}
        />
        <Select
          label="Who gets codes"
          value={issueTo}
          readOnly={!props.editable}
          allowDeselect={false}
          onChange={v => setIssueTo(v ?? 'unlinked')}
          data={[
            { value: 'unlinked', label: 'Students without a linked parent' },
            { value: 'all', label: 'Every active student' },
          ]}
          w={320}
        />
        {props.settings.override && (
          <Text size="xs" c="dimmed">
            Changed by {props.settings.override.updatedBy} {when(props.settings.override.updatedAt)}
            ; the district file says: {props.settings.file.enabled ? 'enabled' : 'disabled'}, role{' '}
            {props.settings.file.defaultRole}, {props.settings.file.issueTo}.
          </Text>
        )}
        <AdminOnly>
          <Group>
            <Button loading={busy} onClick={() => void save()}>
              Save settings
            </Button>
          </Group>
        </AdminOnly>
      </Stack>
    </Card>
  );
}
