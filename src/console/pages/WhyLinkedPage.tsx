/**
 * Why linked: for a student (found by name, or typed by Unique ID / sourcedId), every guardian
 * who can or could see them and how each link came to be (the change-log entry: cause, actor,
 * when). Read-only.
 */
import { Button, Group, Stack, Text, TextInput, Title } from '@mantine/core';
import { useState } from 'react';
import { StudentGuardians } from '../api/page-schemas';
import { ErrorAlert } from '../components/ErrorAlert';
import { GuardiansTable } from '../components/GuardiansTable';
import { StudentPicker } from '../components/StudentPicker';
import { useApi } from '../hooks';

export function WhyLinkedPage({ districtId }: { districtId: string }) {
  const [student, setStudent] = useState<string | null>(null);
  const [typed, setTyped] = useState('');
  const d = encodeURIComponent(districtId);
  const why = useApi(
    student ? `/districts/${d}/students/${encodeURIComponent(student)}/guardians` : null,
    StudentGuardians,
  );
  return (
    <Stack>
      <Title order={1} size="h2">
        Why linked
      </Title>
      <Text>Who can see a student, and how each link came to be.</Text>
      <StudentPicker
        districtId={districtId}
        selected={null}
        onSelect={s => setStudent(s.sourcedId)}
      />
      <form
        onSubmit={e => {
          e.preventDefault();
          if (typed.trim()) setStudent(typed.trim());
        }}
      >
        <Group align="flex-end">
          <TextInput
            label="Or a student's Unique ID or sourcedId"
            value={typed}
            onChange={e => setTyped(e.currentTarget.value)}
            w={320}
          />
          <Button type="submit" variant="default">
            Show
          </Button>
        </Group>
      </form>
      <ErrorAlert error={why.error} title="Could not load the student's guardians" />
      {!student && <Text c="dimmed">Choose a student to see their guardians.</Text>}
      {student && why.data && (
        <>
          <Title order={2} size="h3">
            {why.data.student.name}
            {why.data.student.uniqueId ? ` (${why.data.student.uniqueId})` : ''}
          </Title>
          <Text size="sm">
            {why.data.counts.active} active link{why.data.counts.active === 1 ? '' : 's'},{' '}
            {why.data.counts.inactive} removed
          </Text>
          <GuardiansTable
            caption="Guardians and how they were linked"
            guardians={why.data.guardians}
          />
        </>
      )}
    </Stack>
  );
}
