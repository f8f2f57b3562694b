/**
 * Imports: upload a parents or associations CSV/XLSX, map its columns (the file's first rows
 * shown), choose the options, preview (counts and row issues, server-paged; the issue report
 * as CSV), confirm. The API decides everything (inspect, preview, confirm); this page only
 * collects the choices. Admin-only controls; viewers see a note.
 */
import {
  Alert,
  Anchor,
  Button,
  Card,
  Checkbox,
  FileInput,
  Group,
  NumberInput,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useState } from 'react';
import { apiSend, apiUpload } from '../api/client';
import { ConfirmResult, ImportIssue, ImportPreview, Inspection } from '../api/page-schemas';
import { ConfirmButton } from '../components/ConfirmButton';
import { ErrorAlert } from '../components/ErrorAlert';
import { PagedTable } from '../components/PagedTable';
import { importCountLabel, when } from '../format';
import { usePrincipal } from '../session';
import type { z } from 'zod';

type Kind = 'parents' | 'associations';

export function ImportsPage({ districtId }: { districtId: string }) {
  const d = encodeURIComponent(districtId);
  const { isAdmin } = usePrincipal();
  const [kind, setKind] = useState<Kind>('parents');
  const [file, setFile] = useState<File | null>(null);
  const [inspection, setInspection] = useState<Inspection | null>(null);
  const [mapping, setMapping] = useState<Record<string, string>>({});
  const [headerRow, setHeaderRow] = useState<number | ''>('');
  const [role, setRole] = useState('Parent');
  const [roleFromFile, setRoleFromFile] = useState(false);
  const [school, setSchool] = useState('');
  const [schoolFromFile, setSchoolFromFile] = useState(false);
  const [dontUpdateExisting, setDontUpdateExisting] = useState(false);
  const [dontAllowDuplicates, setDontAllowDuplicates] = useState(false);
  const [sendActivationEmail, setSendActivationEmail] = useState(false);
  const [hasHeaders, setHasHeaders] = useState(true);
  const [clearExisting, setClearExisting] = useState(false);
  const [preview, setPreview] = useState<ImportPreview | null>(null);
  const [result, setResult] = useState<z.infer<typeof ConfirmResult> | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  if (!isAdmin)
    return (
      <Stack>
        <Title order={1} size="h2">
          Imports
        </Title>
        <Text>Importing files needs an admin token; this session is read-only.</Text>
      </Stack>
    );

  const columnsJson = () => {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(mapping)) if (v) out[k] = Number(v);
    return Object.keys(out).length ? JSON.stringify(out) : undefined;
  };
  const common = (f: File) => ({
    fileName: f.name,
    headerRow: kind === 'associations' && !hasHeaders ? undefined : headerRow || undefined,
    columns: columnsJson(),
  });

  const inspect = async (f: File | null, k: Kind = kind, keepMapping = false) => {
    setInspection(null);
    setPreview(null);
    setResult(null);
    setError(undefined);
    if (!f) return;
    setBusy(true);
    try {
      const i = await apiUpload(`/districts/${d}/imports/${k}/inspect`, f, Inspection, {
        fileName: f.name,
        headerRow: headerRow || undefined,
        hasHeaders: k === 'associations' ? String(hasHeaders) : undefined,
        roleFromFile: k === 'parents' ? String(roleFromFile) : undefined,
        schoolFromFile: k === 'parents' ? String(schoolFromFile) : undefined,
        columns: keepMapping ? columnsJson() : undefined,
        rows: 5,
      });
      setInspection(i);
      setMapping(
        Object.fromEntries(i.fields.map(fl => [fl.key, fl.column ? String(fl.column) : ''])),
      );
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const runPreview = async () => {
    if (!file) return;
    setBusy(true);
    setError(undefined);
    setResult(null);
    try {
      const flag = (b: boolean) => String(b);
      const q =
        kind === 'parents'
          ? {
              ...common(file),
              ...(roleFromFile ? { roleFromFile: 'true' } : { role: role.trim() || 'Parent' }),
              ...(schoolFromFile
                ? { schoolFromFile: 'true' }
                : school.trim()
                  ? { school: school.trim() }
                  : {}),
              dontUpdateExisting: flag(dontUpdateExisting),
              dontAllowDuplicates: flag(dontAllowDuplicates),
              sendActivationEmail: flag(sendActivationEmail),
            }
          : { ...common(file), hasHeaders: flag(hasHeaders), clearExisting: flag(clearExisting) };
      setPreview(
        await apiUpload(`/districts/${d}/imports/${kind}/preview`, file, ImportPreview, q),
      );
    } catch (e) {
      setPreview(null);
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Stack>
      <Title order={1} size="h2">
        Imports
      </Title>
      <Card withBorder>
        <Stack gap="sm">
          <Title order={2} size="h4">
            1. File
          </Title>
          <div>
            <Text size="sm" fw={500} id="import-kind-label">
              What the file holds
            </Text>
            <SegmentedControl
              aria-labelledby="import-kind-label"
              value={kind}
              onChange={v => {
                setKind(v);
                void inspect(file, v);
              }}
              data={[
                { value: 'parents', label: 'Parent accounts' },
                { value: 'associations', label: 'Parent–student associations' },
              ]}
            />
          </div>
          <FileInput
            label="CSV or Excel (.xlsx) file"
            placeholder="Choose a file"
            accept=".csv,.txt,.tsv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            value={file}
            onChange={f => {
              setFile(f);
              void inspect(f);
            }}
            clearable
            w={420}
          />
          {busy && (
            <Text size="sm" aria-live="polite">
              Reading the file…
            </Text>
          )}
        </Stack>
      </Card>
      <ErrorAlert error={error} title="The file cannot be used" />
      {inspection && file && (
        <Card withBorder>
          <Stack gap="sm">
            <Title order={2} size="h4">
              2. Columns
            </Title>
            <Text size="sm">
              {inspection.file.format.toUpperCase()}, {inspection.file.bytes.toLocaleString()}{' '}
              bytes;{' '}
              {inspection.headerRow ? `header on row ${inspection.headerRow}` : 'no header row'}.
            </Text>
            {inspection.mappingError && (
              <Alert color="orange" title="Map the columns" role="alert">
                {inspection.mappingError}
              </Alert>
            )}
            <Group align="flex-end">
              {kind === 'associations' && (
                <Checkbox
                  label="The first row holds column names"
                  checked={hasHeaders}
                  onChange={e => setHasHeaders(e.currentTarget.checked)}
                />
              )}
              <NumberInput
                label="Header row (empty: found automatically)"
                min={1}
                value={headerRow}
                onChange={v => setHeaderRow(typeof v === 'number' ? v : '')}
                w={260}
                disabled={kind === 'associations' && !hasHeaders}
              />
              <Button variant="default" onClick={() => void inspect(file, kind, true)}>
                Check the mapping again
              </Button>
            </Group>
            <SimpleGrid cols={{ base: 1, md: 3 }}>
              {inspection.fields.map(f => (
                <Select
                  key={f.key}
                  label={`${f.label}${f.required ? ' (required)' : ''}`}
                  value={mapping[f.key] ?? ''}
                  onChange={v => setMapping(m => ({ ...m, [f.key]: v ?? '' }))}
                  allowDeselect={false}
                  data={[
                    { value: '', label: '(not in the file)' },
                    ...inspection.columns.map(c => ({
                      value: String(c.column),
                      label: `${c.letter}${c.header ? `: ${c.header}` : ''}`,
                    })),
                  ]}
                />
              ))}
            </SimpleGrid>
            <Table.ScrollContainer minWidth={600}>
              <Table striped aria-label="First rows of the file">
                <Table.Caption style={{ captionSide: 'top', textAlign: 'left' }}>
                  First rows of the file
                </Table.Caption>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th scope="col">Row</Table.Th>
                    {inspection.columns.map(c => (
                      <Table.Th scope="col" key={c.column}>
                        {c.letter}
                        {c.header ? `: ${c.header}` : ''}
                      </Table.Th>
                    ))}
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {inspection.rows.map(r => (
                    <Table.Tr key={r.row}>
                      <Table.Td>{r.row}</Table.Td>
                      {r.cells.map((c, i) => (
                        <Table.Td key={i}>{c}</Table.Td>
                      ))}
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            <Title order={2} size="h4">
              3. Options
            </Title>
            {kind === 'parents' ? (
              <Stack gap="xs">
                <Group align="flex-end">
                  <TextInput
                    label="Role of every account"
                    value={role}
                    disabled={roleFromFile}
                    onChange={e => setRole(e.currentTarget.value)}
                    w={220}
                  />
                  <Checkbox
                    label="Take each row's role from the Role column"
                    checked={roleFromFile}
                    onChange={e => setRoleFromFile(e.currentTarget.checked)}
                  />
                </Group>
                <Group align="flex-end">
                  <TextInput
                    label="School of every account (optional)"
                    value={school}
                    disabled={schoolFromFile}
                    onChange={e => setSchool(e.currentTarget.value)}
                    w={220}
                  />
                  <Checkbox
                    label="Take each row's school from the School column"
                    checked={schoolFromFile}
                    onChange={e => setSchoolFromFile(e.currentTarget.checked)}
                  />
                </Group>
                <Checkbox
                  label="Don't update existing accounts"
                  checked={dontUpdateExisting}
                  onChange={e => setDontUpdateExisting(e.currentTarget.checked)}
                />
                <Checkbox
                  label="Don't allow duplicates (same name and email as another account)"
                  checked={dontAllowDuplicates}
                  onChange={e => setDontAllowDuplicates(e.currentTarget.checked)}
                />
                <Checkbox
                  label="Send an activation email to new accounts"
                  checked={sendActivationEmail}
                  onChange={e => setSendActivationEmail(e.currentTarget.checked)}
                />
              </Stack>
            ) : (
              <Checkbox
                label="Clear the existing associations of the students in the file (replace them with the file's)"
                checked={clearExisting}
                onChange={e => setClearExisting(e.currentTarget.checked)}
              />
            )}
            <Group>
              <Button loading={busy} onClick={() => void runPreview()}>
                Preview the import
              </Button>
            </Group>
          </Stack>
        </Card>
      )}
      {preview && (
        <PreviewCard
          districtId={districtId}
          preview={preview}
          onConfirmed={r => {
            setResult(r);
            if (r.status === 'changed' && r.preview) setPreview(r.preview);
          }}
        />
      )}
      {result && (
        <Alert
          color={result.status === 'changed' ? 'orange' : 'green'}
          title={result.status === 'changed' ? 'Nothing was applied' : 'Import applied'}
          role="status"
        >
          {result.status === 'changed'
            ? (result.message ??
              'The data changed since the preview; check the new preview below and confirm it.')
            : `Applied: ${Object.entries(result.counts ?? {})
                .map(([k, v]) => `${v} ${importCountLabel(kind, k)}`)
                .join(', ')}.`}
        </Alert>
      )}
    </Stack>
  );
}

function PreviewCard(props: {
  districtId: string;
  preview: ImportPreview;
  onConfirmed(r: z.infer<typeof ConfirmResult>): void;
}) {
  const p = props.preview;
  const d = encodeURIComponent(props.districtId);
  const base = `/districts/${d}/imports/${encodeURIComponent(p.previewId)}`;
  const applied = p.status === 'applied';
  return (
    <Card withBorder>
      <Stack gap="sm">
        <Title order={2} size="h4">
          4. Preview
        </Title>
        <Text size="sm">
          {p.file.name}: {p.rows.data} data rows, {p.rows.used} usable, {p.rows.withErrors} with
          errors, {p.rows.withWarnings} with warnings. Expires {when(p.expiresAt)}.
        </Text>
        <Table aria-label="What the import would do" w={420}>
          <Table.Tbody>
            {Object.entries(p.counts).map(([k, v]) => (
              <Table.Tr key={k}>
                <Table.Th scope="row">{importCountLabel(p.kind, k)}</Table.Th>
                <Table.Td data-testid={`count-${k}`}>{v}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
        <PagedTable
          caption="Row issues"
          path={`${base}/issues`}
          item={ImportIssue}
          pageSize={25}
          empty="No row has an issue."
          columns={[
            { key: 'row', label: 'Row' },
            { key: 'column', label: 'Column' },
            { key: 'value', label: 'Value' },
            { key: 'severity', label: 'Severity' },
            { key: 'reason', label: 'Reason' },
          ]}
        />
        <Anchor href={`${base}/report.csv`} download>
          Download the issue report (CSV)
        </Anchor>
        {!applied && (
          <Group>
            <ConfirmButton
              title="Apply this import?"
              message={
                <Text>
                  The changes counted above are written now, exactly as previewed; rows with errors
                  are left out (they are in the issue report). If the data changed since the
                  preview, nothing is applied and a new preview is shown.
                </Text>
              }
              confirmLabel="Apply the import"
              onConfirm={async () =>
                props.onConfirmed(await apiSend('POST', `${base}/confirm`, ConfirmResult))
              }
            >
              Confirm the import
            </ConfirmButton>
          </Group>
        )}
      </Stack>
    </Card>
  );
}
