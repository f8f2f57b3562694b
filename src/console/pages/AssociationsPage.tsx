/**
 * Associations: find a student by name and see their guardians with each link's origin; find
 * a parent account by name, Unique ID or email (server-paged); link the two (origin manual) or
 * remove a manual link. Linking and unlinking are shown to admins only.
 */
import { Badge, Button, Stack, Text, TextInput, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { useState } from 'react';
import { apiSend, errorMessage } from '../api/client';
import {
  AssociationResult,
  ParentHit,
  StudentGuardians,
  type StudentHit,
} from '../api/page-schemas';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorAlert } from '../components/ErrorAlert';
import { GuardiansTable } from '../components/GuardiansTable';
import { PagedTable } from '../components/PagedTable';
import { StudentPicker } from '../components/StudentPicker';
import { useApi } from '../hooks';
import { AdminOnly, usePrincipal } from '../session';

export function AssociationsPage({ districtId }: { districtId: string }) {
  const d = encodeURIComponent(districtId);
  const { isAdmin } = usePrincipal();
  const [student, setStudent] = useState<StudentHit | null>(null);
  const [q, setQ] = useState('');
  const [debounced] = useDebouncedValue(q.trim(), 300);
  const [version, setVersion] = useState(0);
  const guardians = useApi(
    student ? `/districts/${d}/students/${encodeURIComponent(student.sourcedId)}/guardians` : null,
    StudentGuardians,
    { refreshKey: version },
  );

  const link = async (p: ParentHit) => {
    if (!student) return;
    try {
      const r = await apiSend(
        'POST',
        `/districts/${d}/parents/${encodeURIComponent(p.id)}/associations`,
        AssociationResult,
        { studentSourcedId: student.sourcedId },
      );
      notifications.show({
        color: 'green',
        message:
          r.status === 'unchanged'
            ? `${p.givenName} ${p.familyName} was already linked to ${student.givenName} (manual).`
            : `Linked ${p.givenName} ${p.familyName} to ${student.givenName} ${student.familyName} (manual).`,
      });
      setVersion(v => v + 1);
    } catch (e) {
      notifications.show({ color: 'red', title: 'Not linked', message: errorMessage(e) });
    }
  };

  return (
    <Stack>
      <Title order={1} size="h2">
        Associations
      </Title>
      <Title order={2} size="h3">
        Student
      </Title>
      <StudentPicker districtId={districtId} selected={student} onSelect={setStudent} />
      <ErrorAlert error={guardians.error} title="Could not load the student's guardians" />
      {student && guardians.data && (
        <GuardiansTable
          caption={`Guardians of ${student.givenName} ${student.familyName}`}
          guardians={guardians.data.guardians}
          actions={
            isAdmin
              ? g =>
                  g.origin === 'manual' && g.status === 'active' ? (
                    <ConfirmButton
                      size="xs"
                      color="red"
                      variant="light"
                      title="Remove this manual link?"
                      message={
                        <Text>
                          {g.parent.name} will no longer be linked to {student.givenName}{' '}
                          {student.familyName} by the manual link. Links from the SIS, imports or
                          access codes are not touched. The change is recorded.
                        </Text>
                      }
                      confirmLabel="Unlink"
                      done="Manual link removed."
                      onConfirm={async () => {
                        await apiSend(
                          'DELETE',
                          `/districts/${d}/parents/${encodeURIComponent(g.parent.id)}/associations/${encodeURIComponent(student.uniqueId)}`,
                          AssociationResult,
                        );
                        setVersion(v => v + 1);
                      }}
                    >
                      Unlink {g.parent.name}
                    </ConfirmButton>
                  ) : (
                    <Text size="xs" c="dimmed">
                      {g.status === 'active' ? `managed by ${g.origin}` : ''}
                    </Text>
                  )
              : undefined
          }
        />
      )}
      <Title order={2} size="h3">
        Parent accounts
      </Title>
      <TextInput
        label="Find a parent"
        description="Name (start of first or last name), Unique ID, account id or email"
        value={q}
        onChange={e => setQ(e.currentTarget.value)}
        w={360}
      />
      {!debounced && <Text c="dimmed">Type a name, Unique ID or email to find parents.</Text>}
      {debounced && (
        <PagedTable
          caption="Parents found"
          path={`/districts/${d}/parents`}
          query={{ q: debounced }}
          item={ParentHit}
          pageSize={20}
          refreshKey={version}
          empty={`No parent account matches “${debounced}”.`}
          rowKey={p => p.id}
          columns={[
            { key: 'name', label: 'Name', render: p => `${p.givenName} ${p.familyName}` },
            { key: 'uniqueId', label: 'Unique ID' },
            { key: 'email', label: 'Email' },
            {
              key: 'status',
              label: 'Status',
              render: p => (
                <Badge variant="light" color={p.status === 'active' ? 'green' : 'gray'}>
                  {p.status}
                </Badge>
              ),
            },
            { key: 'origin', label: 'Origin' },
            ...(isAdmin
              ? [
                  {
                    key: 'link',
                    label: 'Link',
                    render: (p: ParentHit) => (
                      <AdminOnly>
                        <Button
                          size="xs"
                          variant="light"
                          disabled={!student || p.status !== 'active'}
                          onClick={() => void link(p)}
                          aria-label={`Link ${p.givenName} ${p.familyName}${student ? ` to ${student.givenName} ${student.familyName}` : ''}`}
                        >
                          {student ? `Link to ${student.givenName}` : 'Choose a student first'}
                        </Button>
                      </AdminOnly>
                    ),
                  },
                ]
              : []),
          ]}
        />
      )}
    </Stack>
  );
}
