/**
 * District-file schema of the eSchoolPLUS connector (`kind: "eschoolplus"`, sis-reference
 * §6): the flat files a district's Download Definitions write (REG, REG_BUILDING,
 * REG_CONTACT, REG_CONTACT_PHONE and, when the definition has it, REG_STU_CONTACT), read
 * from a local folder or an SFTP drop. It joins `ConnectorConfig` in `./district.ts`.
 * Secrets are never written here: the SFTP settings name the variables that hold them.
 */
import iconv from 'iconv-lite';
import { z } from 'zod';

const EnvVarName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name (A-Z, 0-9, _)');

/** An eSchoolPLUS column name as the definition writes it in the header (`CONTACT_ID`). */
const ColumnName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_#!]+$/, 'must be a column name (letters, digits, _)');

/**
 * One file of the definition: its name in the folder (a `*` matches any characters; the
 * newest match by modification time is read), the definition's columns in order (required
 * when the files have no header row; with a header row the header must then equal them), and
 * the column that absorbs stray delimiters (a free-text column such as `COMMENTS`).
 */
export const ESchoolFileDefinition = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1)
    .regex(/^[^/\\]+$/, 'must be a file name, not a path'),
  columns: z.array(ColumnName).min(1).optional(),
  /** Default: `COMMENTS` for REG_STU_CONTACT when the file has it; none for the others. */
  freeTextColumn: ColumnName.optional(),
});
export type ESchoolFileDefinition = z.infer<typeof ESchoolFileDefinition>;

/** Where the definition's files are picked up. */
export const ESchoolSource = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('folder'), path: z.string().trim().min(1) }),
  z.strictObject({
    type: z.literal('sftp'),
    host: z.string().trim().min(1),
    port: z.number().int().min(1).max(65535).default(22),
    usernameEnv: EnvVarName,
    passwordEnv: EnvVarName.optional(),
    /** Variable holding a PEM/OpenSSH private key (instead of, or with, a password). */
    privateKeyEnv: EnvVarName.optional(),
    /**
     * SHA-256 fingerprint of the server's host key (base64 as `ssh-keygen -l` prints it, with
     * or without `SHA256:`). Strongly recommended; without it any host key is accepted.
     */
    hostKeySha256: z.string().trim().min(1).optional(),
    /** Folder on the server holding the files. */
    remoteDir: z.string().trim().min(1).default('.'),
    timeoutMs: z.number().int().min(100).max(600000).default(30000),
  }),
]);
export type ESchoolSource = z.infer<typeof ESchoolSource>;

/** The file format the definition writes (sis-reference §6.3). */
export const ESchoolFormat = z.strictObject({
  /** One character: `|`, `,`, `^`, tab… */
  delimiter: z
    .string()
    .length(1, 'must be one character')
    .refine(d => d !== '\n' && d !== '\r', 'must not be a line break')
    .default('|'),
  /** The definition writes a header row of column names (`ColumnHeaders`). */
  headerRow: z.boolean().default(true),
  /** Text encoding (iconv-lite name). eSchoolPLUS serves Windows-1252. */
  encoding: z
    .string()
    .trim()
    .refine(e => iconv.encodingExists(e), 'is not an encoding iconv-lite knows')
    .default('windows-1252'),
  /**
   * The literal value of the end-of-record column the district appended to every file
   * (e.g. `#!#`, added with SQL as the last column) so rows broken by raw line breaks can be
   * rejoined; null when the definition has no such column.
   */
  endOfRecordMarker: z.string().min(1).nullable().default(null),
});
export type ESchoolFormat = z.infer<typeof ESchoolFormat>;

/**
 * Which guardian contacts (`CONTACT_TYPE` = `G`) get accounts and links, from the flags of
 * their REG_STU_CONTACT rows (invariant 11; `Y` = yes, anything else = no). Without
 * REG_STU_CONTACT only the contact type is known and these flags cannot apply.
 */
export const ESchoolContactPolicy = z.strictObject({
  /** Require `WEB_ACCESS` = Y (Home Access Center). Default true. */
  requireWebAccess: z.boolean().default(true),
  /** Require `LEGAL_GUARD` = Y. Default false. */
  requireLegalGuardian: z.boolean().default(false),
  /** Require `CUST_GUARD` = Y. Default false. */
  requireCustodialGuardian: z.boolean().default(false),
  /**
   * `CONTACT_PRIORITY` at which districts park duplicate guardian records before merging
   * them: such rows are reported and not used. null = use every priority.
   */
  parkedPriority: z.number().int().nullable().default(99),
});
export type ESchoolContactPolicy = z.infer<typeof ESchoolContactPolicy>;

/** `kind: "eschoolplus"`. */
export const ESchoolPlusConnectorConfig = z
  .strictObject({
    kind: z.literal('eschoolplus'),
    source: ESchoolSource,
    files: z
      .strictObject({
        students: ESchoolFileDefinition.default({ name: 'REG.txt' }),
        buildings: ESchoolFileDefinition.default({ name: 'REG_BUILDING.txt' }),
        contacts: ESchoolFileDefinition.default({ name: 'REG_CONTACT.txt' }),
        contactPhones: ESchoolFileDefinition.default({ name: 'REG_CONTACT_PHONE.txt' }),
        /** REG_STU_CONTACT, when the definition has it. */
        studentContacts: ESchoolFileDefinition.optional(),
      })
      .default({
        students: { name: 'REG.txt' },
        buildings: { name: 'REG_BUILDING.txt' },
        contacts: { name: 'REG_CONTACT.txt' },
        contactPhones: { name: 'REG_CONTACT_PHONE.txt' },
      }),
    format: ESchoolFormat.default({
      delimiter: '|',
      headerRow: true,
      encoding: 'windows-1252',
      endOfRecordMarker: null,
    }),
    /**
     * `none` (default, as districts know eSchoolPLUS integrations): parent accounts from the
     * guardian contacts, no links (`capabilities.guardianLinks: false`; students get access
     * codes when the district enables them). `student-contact`: links from the `G` rows of
     * REG_STU_CONTACT (requires `files.studentContacts`).
     */
    links: z.enum(['none', 'student-contact']).default('none'),
    contacts: ESchoolContactPolicy.default({
      requireWebAccess: true,
      requireLegalGuardian: false,
      requireCustodialGuardian: false,
      parkedPriority: 99,
    }),
    /** `CURRENT_STATUS` values of active students. */
    activeStatuses: z.array(z.string().trim().min(1)).min(1).default(['A']),
    /** `RELATION_CODE` → relationship name (e.g. `{"M": "Mother"}`); unmapped codes stay as they are. */
    relationCodes: z.record(z.string(), z.string().trim().min(1)).default({}),
    /** Students (or guardians, for link-less chunks) per chunk. */
    pageSize: z.number().int().min(1).max(10000).default(500),
  })
  .superRefine((c, ctx) => {
    if (c.links === 'student-contact' && !c.files.studentContacts)
      ctx.addIssue({
        code: 'custom',
        path: ['files', 'studentContacts'],
        message: 'links "student-contact" needs the REG_STU_CONTACT file of the definition',
      });
    if (!c.format.headerRow) {
      for (const [key, def] of Object.entries(c.files)) {
        if (def && !def.columns)
          ctx.addIssue({
            code: 'custom',
            path: ['files', key, 'columns'],
            message: 'is required when the files have no header row (format.headerRow false)',
          });
      }
    }
    if (c.source.type === 'sftp' && !c.source.passwordEnv && !c.source.privateKeyEnv)
      ctx.addIssue({
        code: 'custom',
        path: ['source', 'passwordEnv'],
        message: 'SFTP needs passwordEnv or privateKeyEnv',
      });
  });
export type ESchoolPlusConnectorConfig = z.infer<typeof ESchoolPlusConnectorConfig>;
