/**
 * Every guardian linked to a student and how each link came to be
 * (GET /districts/:id/students/:student/guardians): parent, origin, status, since, the
 * explanation; `actions` adds a cell per row (e.g. Unlink).
 */
import { Badge, Table, Text } from '@mantine/core';
import type { ReactNode } from 'react';
import type { Guardian } from '../api/page-schemas';
import { when } from '../format';

const ORIGIN: Record<string, string> = {
  sis: 'SIS',
  import: 'Import',
  manual: 'Manual',
  'access-code': 'Access code',
};

export function GuardiansTable(props: {
  caption: string;
  guardians: Guardian[];
  actions?: (g: Guardian) => ReactNode;
}) {
  if (props.guardians.length === 0)
    return <Text c="dimmed">No guardian is or was linked to this student.</Text>;
  return (
    <Table.ScrollContainer minWidth={700}>
      <Table striped aria-label={props.caption}>
        <Table.Caption style={{ captionSide: 'top', textAlign: 'left' }}>
          {props.caption}
        </Table.Caption>
        <Table.Thead>
          <Table.Tr>
            <Table.Th scope="col">Parent</Table.Th>
            <Table.Th scope="col">Unique ID</Table.Th>
            <Table.Th scope="col">Email</Table.Th>
            <Table.Th scope="col">Origin</Table.Th>
            <Table.Th scope="col">Link</Table.Th>
            <Table.Th scope="col">Since</Table.Th>
            <Table.Th scope="col">How</Table.Th>
            {props.actions && <Table.Th scope="col">Actions</Table.Th>}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {props.guardians.map(g => (
            <Table.Tr key={`${g.parent.id}:${g.origin}`} data-testid={`link-${g.origin}`}>
              <Table.Td>{g.parent.name}</Table.Td>
              <Table.Td>{g.parent.uniqueId ?? ''}</Table.Td>
              <Table.Td>{g.parent.email ?? ''}</Table.Td>
              <Table.Td>
                <Badge variant="light" color="gray">
                  {ORIGIN[g.origin] ?? g.origin}
                </Badge>
              </Table.Td>
              <Table.Td>{g.status}</Table.Td>
              <Table.Td>{g.since ? when(g.since) : 'no record'}</Table.Td>
              <Table.Td>{g.explanation}</Table.Td>
              {props.actions && <Table.Td>{props.actions(g)}</Table.Td>}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
