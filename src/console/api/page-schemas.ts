/**
 * zod schemas of the API answers the Imports, Access codes, Associations and Why linked pages
 * read (loose: unknown keys are kept, so new API fields do not break the console).
 */
import { z } from 'zod';

export const StudentHit = z.looseObject({
  sourcedId: z.string(),
  uniqueId: z.string(),
  givenName: z.string(),
  familyName: z.string(),
  grade: z.string().optional(),
});
export type StudentHit = z.infer<typeof StudentHit>;
export const StudentHits = z.object({ students: z.array(StudentHit) });

export const ParentHit = z.looseObject({
  id: z.string(),
  uniqueId: z.string().optional(),
  givenName: z.string(),
  familyName: z.string(),
  email: z.string().optional(),
  status: z.string(),
  origin: z.string(),
  matchedBy: z.string(),
});
export type ParentHit = z.infer<typeof ParentHit>;

export const AssociationResult = z.looseObject({
  status: z.string(),
  parentId: z.string(),
  studentUniqueId: z.string(),
  otherActiveOrigins: z.array(z.string()),
});

const AuditEvent = z.looseObject({ at: z.string(), actor: z.string(), sentence: z.string() });
export const Guardian = z.looseObject({
  parent: z.looseObject({
    id: z.string(),
    uniqueId: z.string().optional(),
    name: z.string(),
    email: z.string().optional(),
    status: z.string().optional(),
    missing: z.literal(true).optional(),
  }),
  origin: z.string(),
  status: z.string(),
  relationship: z.string().optional(),
  since: z.string().nullable(),
  how: AuditEvent.nullable(),
  explanation: z.string(),
});
export type Guardian = z.infer<typeof Guardian>;
export const StudentGuardians = z.looseObject({
  student: z.looseObject({
    sourcedId: z.string(),
    uniqueId: z.string().optional(),
    name: z.string(),
    grade: z.string().optional(),
    status: z.string().optional(),
  }),
  counts: z.object({ active: z.number(), inactive: z.number() }),
  guardians: z.array(Guardian),
});
export type StudentGuardians = z.infer<typeof StudentGuardians>;

export const Inspection = z.looseObject({
  kind: z.string(),
  file: z.looseObject({ name: z.string(), format: z.string(), bytes: z.number() }),
  headerRow: z.number().optional(),
  columns: z.array(z.object({ column: z.number(), letter: z.string(), header: z.string() })),
  fields: z.array(
    z.object({
      key: z.string(),
      label: z.string(),
      required: z.boolean(),
      column: z.number().optional(),
      header: z.string().optional(),
    }),
  ),
  mappingError: z.string().optional(),
  rows: z.array(z.object({ row: z.number(), cells: z.array(z.string()) })),
});
export type Inspection = z.infer<typeof Inspection>;

export const ImportIssue = z.object({
  file: z.string(),
  row: z.number(),
  column: z.string(),
  value: z.string(),
  reason: z.string(),
  severity: z.string(),
});
export type ImportIssue = z.infer<typeof ImportIssue>;

export const ImportPreview = z.looseObject({
  previewId: z.string(),
  kind: z.string(),
  status: z.string(),
  expiresAt: z.string(),
  file: z.looseObject({ name: z.string() }),
  columns: z.record(z.string(), z.string()),
  rows: z.object({
    data: z.number(),
    used: z.number(),
    withErrors: z.number(),
    withWarnings: z.number(),
  }),
  counts: z.record(z.string(), z.number()),
  issueCount: z.object({ errors: z.number(), warnings: z.number() }),
});
export type ImportPreview = z.infer<typeof ImportPreview>;

export const ConfirmResult = z.looseObject({
  status: z.enum(['applied', 'already-applied', 'changed']),
  previewId: z.string(),
  counts: z.record(z.string(), z.number()).optional(),
  message: z.string().optional(),
  preview: ImportPreview.optional(),
});

const CodeSettingsValues = z.object({
  enabled: z.boolean(),
  defaultRole: z.string(),
  issueTo: z.enum(['unlinked', 'all']),
});
export const CodeSettings = z.looseObject({
  effective: CodeSettingsValues,
  file: CodeSettingsValues,
  override: z.looseObject({ updatedAt: z.string(), updatedBy: z.string() }).optional(),
});
export type CodeSettings = z.infer<typeof CodeSettings>;

export const Sections = z.object({
  items: z.array(
    z.object({
      sourcedId: z.string(),
      title: z.string(),
      schoolSourcedId: z.string(),
      students: z.number(),
    }),
  ),
});

export const ResetRecord = z.looseObject({
  id: z.string(),
  actor: z.string(),
  at: z.string(),
  scope: z.string(),
  requested: z.number(),
  revoked: z.number(),
  issued: z.number(),
});
export const ResetList = z.looseObject({ items: z.array(ResetRecord) });
export const ResetResult = ResetRecord.extend({ notFound: z.array(z.string()) });

export const StudentCodes = z.object({
  studentSourcedId: z.string(),
  codes: z.array(
    z.looseObject({
      formatted: z.string(),
      status: z.string(),
      createdAt: z.string(),
      revokedAt: z.string().optional(),
    }),
  ),
});
