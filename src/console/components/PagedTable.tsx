/**
 * `PagedTable`: a table whose rows are paged, filtered and counted by the API (large lists:
 * a held run may list 100,000 records). The API path must answer `{total, offset, limit,
 * items}` to `?offset=&limit=` plus the filters' query parameters; `csv` gives the address of
 * the whole list as CSV for the same filters (a download link).
 *
 * Usage:
 *   <PagedTable caption="Rejects" path={`/runs/${id}/rejects`} item={RejectItem}
 *     columns={[{ key: 'entity', label: 'Entity' }, { key: 'reason', label: 'Reason' }]}
 *     filters={[{ kind: 'select', name: 'kind', label: 'Kind', options: [...] }]}
 *     csv={q => `/runs/${id}/rejects.csv?${q}`} />
 */
import {
  Anchor,
  Group,
  Loader,
  Pagination,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useMemo, useState, type ReactNode } from 'react';
import type { z } from 'zod';
import { withQuery } from '../api/client';
import { pageOf } from '../api/schemas';
import { useApi } from '../hooks';
import { ErrorAlert } from './ErrorAlert';

export interface Column<T> {
  /** Field name (also the default cell: `String(row[key] ?? '')`). */
  key: string;
  label: string;
  render?: (row: T) => ReactNode;
}

export type TableFilter =
  | {
      kind: 'select';
      name: string;
      label: string;
      options: { value: string; label: string }[];
      /** Empty: no filter ("All"). */
      initial?: string;
    }
  | { kind: 'text'; name: string; label: string; placeholder?: string };

export interface PagedTableProps<T> {
  /** Accessible name of the table (shown above it). */
  caption: string;
  /** API path of the paged list. */
  path: string;
  /** zod schema of one item. */
  item: z.ZodType<T>;
  columns: Column<T>[];
  rowKey?: (row: T, index: number) => string;
  filters?: TableFilter[];
  /** Address of the full list as CSV for the current filters (`q`: their query string). */
  csv?: (q: string) => string;
  /** Label of the CSV link (default "Download CSV"). */
  csvLabel?: string;
  pageSize?: number;
  /** Shown when the list is empty. */
  empty?: string;
  /** Change to reload (e.g. after an action). */
  refreshKey?: unknown;
  /** Extra query parameters sent with every page. */
  query?: Record<string, string | number | undefined>;
}

/** A field as cell text: strings, numbers and booleans as they are, anything else as JSON. */
function cellText(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

export function PagedTable<T>(props: PagedTableProps<T>) {
  const pageSize = props.pageSize ?? 50;
  const [page, setPage] = useState(1);
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      (props.filters ?? []).map(f => [f.name, f.kind === 'select' ? (f.initial ?? '') : '']),
    ),
  );
  const [debounced] = useDebouncedValue(values, 300);
  const filterQuery = useMemo(() => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(debounced)) if (v) q.set(k, v);
    return q.toString();
  }, [debounced]);
  const schema = useMemo(() => pageOf(props.item), [props.item]);
  const path = withQuery(props.path, {
    ...props.query,
    ...Object.fromEntries(new URLSearchParams(filterQuery)),
    offset: (page - 1) * pageSize,
    limit: pageSize,
  });
  const { data, error, loading } = useApi(path, schema, { refreshKey: props.refreshKey });
  const pages = data ? Math.max(1, Math.ceil(data.total / pageSize)) : 1;
  const setFilter = (name: string, value: string) => {
    setValues(v => ({ ...v, [name]: value }));
    setPage(1);
  };
  const id = `table-${props.caption.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  const from = data && data.total > 0 ? data.offset + 1 : 0;
  const to = data ? data.offset + data.items.length : 0;

  return (
    <Stack gap="xs">
      <Group justify="space-between" align="flex-end">
        <Group align="flex-end">
          {(props.filters ?? []).map(f =>
            f.kind === 'select' ? (
              <Select
                key={f.name}
                label={f.label}
                data={[{ value: '', label: 'All' }, ...f.options]}
                value={values[f.name] ?? ''}
                onChange={v => setFilter(f.name, v ?? '')}
                allowDeselect={false}
                w={180}
              />
            ) : (
              <TextInput
                key={f.name}
                label={f.label}
                placeholder={f.placeholder}
                value={values[f.name] ?? ''}
                onChange={e => setFilter(f.name, e.currentTarget.value)}
                w={240}
              />
            ),
          )}
        </Group>
        {props.csv && (
          <Anchor href={props.csv(filterQuery)} download>
            {props.csvLabel ?? 'Download CSV'}
          </Anchor>
        )}
      </Group>
      <ErrorAlert error={error} title={`Could not load ${props.caption.toLowerCase()}`} />
      <Table.ScrollContainer minWidth={600}>
        <Table striped highlightOnHover aria-labelledby={`${id}-caption`} aria-busy={loading}>
          <Table.Caption id={`${id}-caption`} style={{ captionSide: 'top', textAlign: 'left' }}>
            {props.caption}
          </Table.Caption>
          <Table.Thead>
            <Table.Tr>
              {props.columns.map(c => (
                <Table.Th key={c.key} scope="col">
                  {c.label}
                </Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {data?.items.map((row, i) => (
              <Table.Tr key={props.rowKey ? props.rowKey(row, i) : `${data.offset + i}`}>
                {props.columns.map(c => (
                  <Table.Td key={c.key}>
                    {c.render ? c.render(row) : cellText((row as Record<string, unknown>)[c.key])}
                  </Table.Td>
                ))}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {loading && !data && <Loader size="sm" aria-label={`Loading ${props.caption}`} />}
      {data && data.total === 0 && <Text c="dimmed">{props.empty ?? 'Nothing to show.'}</Text>}
      {data && data.total > 0 && (
        <Group justify="space-between">
          <Text size="sm" aria-live="polite" data-testid={`${id}-range`}>
            {from.toLocaleString()}–{to.toLocaleString()} of {data.total.toLocaleString()}
          </Text>
          {pages > 1 && (
            <Pagination
              total={pages}
              value={page}
              onChange={setPage}
              getItemProps={p => ({ 'aria-label': `page ${p}` })}
              aria-label={`${props.caption} pages`}
            />
          )}
        </Group>
      )}
    </Stack>
  );
}
