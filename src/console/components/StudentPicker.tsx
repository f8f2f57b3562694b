/**
 * Find a student by the start of a first or last name (GET /districts/:id/students?q=) and
 * pick one. Results are buttons (keyboard: Tab then Enter); the chosen one is announced.
 */
import { Button, Group, Stack, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useState } from 'react';
import { withQuery } from '../api/client';
import { StudentHits, type StudentHit } from '../api/page-schemas';
import { useApi } from '../hooks';
import { ErrorAlert } from './ErrorAlert';

export function StudentPicker(props: {
  districtId: string;
  selected: StudentHit | null;
  onSelect(s: StudentHit): void;
}) {
  const [q, setQ] = useState('');
  const [debounced] = useDebouncedValue(q.trim(), 300);
  const found = useApi(
    debounced
      ? withQuery(`/districts/${encodeURIComponent(props.districtId)}/students`, {
          q: debounced,
          limit: 10,
        })
      : null,
    StudentHits,
  );
  return (
    <Stack gap="xs">
      <TextInput
        label="Find a student"
        description="Type the start of a first or last name"
        value={q}
        onChange={e => setQ(e.currentTarget.value)}
        w={320}
      />
      <ErrorAlert error={debounced ? found.error : undefined} title="Search failed" />
      {debounced && found.data && found.data.students.length === 0 && (
        <Text c="dimmed">No active student's first or last name starts with “{debounced}”.</Text>
      )}
      {debounced && found.data && found.data.students.length > 0 && (
        <Group gap="xs" role="group" aria-label="Students found">
          {found.data.students.map(s => (
            <Button
              key={s.sourcedId}
              size="xs"
              variant={props.selected?.sourcedId === s.sourcedId ? 'filled' : 'light'}
              aria-pressed={props.selected?.sourcedId === s.sourcedId}
              onClick={() => props.onSelect(s)}
            >
              {s.givenName} {s.familyName} ({s.uniqueId}
              {s.grade ? `, grade ${s.grade}` : ''})
            </Button>
          ))}
        </Group>
      )}
      <Text size="sm" aria-live="polite">
        {props.selected
          ? `Student: ${props.selected.givenName} ${props.selected.familyName} (Unique ID ${props.selected.uniqueId})`
          : 'No student chosen.'}
      </Text>
    </Stack>
  );
}
