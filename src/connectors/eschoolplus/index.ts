/**
 * The eSchoolPLUS connector (sis-reference §6): reads the files a district's Download
 * Definitions write — REG (students), REG_BUILDING, REG_CONTACT, REG_CONTACT_PHONE and,
 * when the definition has it, REG_STU_CONTACT — from a local folder or an SFTP drop.
 *
 * Files are decoded as Windows-1252 unless configured otherwise, split on the definition's
 * delimiter, and rows broken by raw line breaks or delimiters are rejoined (see
 * `records.ts`); rows that cannot be repaired are rejects with their line numbers. Every file
 * is present and every header matches the definition before anything is read, so a bad file
 * set fails the pull and changes nothing.
 *
 * Links: by default (`links: "none"`) parent accounts come from the guardian contacts and no
 * links are made (`capabilities.guardianLinks: false`; the access-code fallback gives each
 * student a code). With `links: "student-contact"`, the `G` rows of REG_STU_CONTACT that pass
 * the district's policy become links.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ESchoolPlusConnectorConfig } from '../../config/eschoolplus.js';
import { SisPayloadError } from '../../errors.js';
import type {
  Guardian,
  Relationship,
  RosterChunk,
  School,
  Student,
} from '../../mapping/canonical.js';
import {
  judgeJoinedContact,
  judgeStudentContact,
  mapESchoolBuilding,
  mapESchoolGuardian,
  mapESchoolRelationship,
  mapESchoolStudent,
  type ESchoolContact,
} from '../../mapping/eschoolplus.js';
import { roleFromRelationships } from '../../mapping/powerschool.js';
import type { Reject } from '../../models/types.js';
import { formatZodIssues } from '../powerschool/payloads.js';
import type { ConnectorCapabilities, PullContext, PullStats, SisConnector } from '../types.js';
import {
  EsBuildingRow,
  EsContactPhoneRow,
  EsContactRow,
  EsStudentContactRow,
  EsStudentRow,
  REQUIRED_COLUMNS,
  TABLE_OF,
  type ESchoolFileKind,
} from './definitions.js';
import {
  openFolderFileSet,
  openSftpFileSet,
  type FileSet,
  type ResolvedFile,
  type SftpSecrets,
} from './files.js';
import { ESchoolJoinStore, type JoinedContact } from './join.js';
import { fileLines, hasMarkerColumn, readHeader, RecordAssembler } from './records.js';

/** Code-level options: resolved SFTP secrets (when the source is SFTP) and the logger. */
export interface ESchoolPlusConnectorOptions {
  logger: Logger;
  sftp?: SftpSecrets | undefined;
  /**
   * Folder of the pull's temporary join file (a `gsync-esp-join-*` folder made in it and
   * removed when the pull ends or fails). Default: the OS temporary folder. It needs about
   * 100 bytes per file row of free space (≈ 0.5 GB for a 500,000-student district).
   */
  tempDir?: string | undefined;
}

/** Figures of the last pull (rows read, repaired and rejected; contact-type outcomes). */
export interface ESchoolPullFigures {
  /** Records read per file name. */
  records: Record<string, number>;
  /** Records rejoined from several physical lines. */
  rejoinedLineBreaks: number;
  /** Records whose extra delimiters went into the free-text column. */
  foldedDelimiters: number;
  /** Physical-line rejects (rows that could not be repaired). */
  unrepairable: number;
  /** Rows lost per file (unrepairable, or not matching the row schema). */
  lostRows: Partial<Record<ESchoolFileKind, number>>;
  /** REG_STU_CONTACT / joined types: guardian rows used, address rows (P/M), other contacts (C/O), parked duplicates, rows failing the policy. */
  guardianRows: number;
  addressRows: number;
  otherContactRows: number;
  parkedRows: number;
  policyRows: number;
}

export interface ESchoolPullStats extends PullStats {
  figures: ESchoolPullFigures;
}

function emptyFigures(): ESchoolPullFigures {
  return {
    records: {},
    rejoinedLineBreaks: 0,
    foldedDelimiters: 0,
    unrepairable: 0,
    lostRows: {},
    guardianRows: 0,
    addressRows: 0,
    otherContactRows: 0,
    parkedRows: 0,
    policyRows: 0,
  };
}

const ENTITY_OF: Record<ESchoolFileKind, Reject['entity']> = {
  students: 'student',
  buildings: 'school',
  contacts: 'guardian',
  contactPhones: 'guardian',
  studentContacts: 'relationship',
};

/** Output order of ids (the same as `a.localeCompare(b, 'en', { numeric: true })`, faster). */
const byNumericId = new Intl.Collator('en', { numeric: true }).compare;

/** The validated layout of one file: its data columns and the free-text column index. */
interface Layout {
  file: ResolvedFile;
  columns: string[];
  freeTextIndex?: number | undefined;
}

/** `SisConnector` for eSchoolPLUS download-definition files. */
export class ESchoolPlusConnector implements SisConnector {
  readonly kind = 'eschoolplus' as const;
  readonly capabilities: ConnectorCapabilities;
  private readonly logger: Logger;
  private prepared: { set: FileSet; layouts: Map<ESchoolFileKind, Layout> } | undefined;
  private figures: ESchoolPullFigures = emptyFigures();

  constructor(
    private readonly config: ESchoolPlusConnectorConfig,
    options: ESchoolPlusConnectorOptions,
  ) {
    this.logger = options.logger;
    this.sftp = options.sftp;
    this.tempDir = options.tempDir;
    this.capabilities = {
      guardianLinks:
        config.links === 'student-contact' && config.files.studentContacts !== undefined,
      enrollments: false,
      delta: false,
    };
  }

  private readonly sftp: SftpSecrets | undefined;
  private readonly tempDir: string | undefined;

  /** Pick up the file set and check every header. Throws `SisPayloadError` naming the file and column. */
  async checkConnection(): Promise<void> {
    const p = await this.prepare();
    this.prepared = undefined;
    await p.set.dispose();
  }

  /**
   * Pick up the file set and validate every file's header against the definition (so a bad
   * set fails before anything is written), then read REG_BUILDING. A building without a
   * name is a reject.
   */
  async readSchools(ctx: PullContext): Promise<School[]> {
    this.figures = emptyFigures();
    if (this.prepared) await this.prepared.set.dispose();
    this.prepared = undefined;
    const p = await this.prepare();
    this.prepared = p;
    const schools: School[] = [];
    const seen = new Set<string>();
    try {
      for await (const { row, where } of this.rows(ctx, p, 'buildings', EsBuildingRow)) {
        if (seen.has(row.BUILDING)) continue;
        seen.add(row.BUILDING);
        const m = mapESchoolBuilding(row, where);
        if (m.ok) schools.push(m.school);
        else ctx.reject(m.reject);
      }
    } catch (err) {
      this.prepared = undefined;
      await p.set.dispose();
      throw err;
    }
    return schools;
  }

  /**
   * Stream the roster (see the module header). Throws `SisPayloadError` when a file is
   * missing or a header does not match the definition (before the first chunk), and for
   * I/O errors reading a file.
   */
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    if (!this.prepared) ctx.signal.throwIfAborted();
    const p = this.prepared ?? (await this.prepare());
    this.prepared = undefined;
    try {
      ctx.signal.throwIfAborted();
      yield* this.roster(ctx, p);
    } finally {
      await p.set.dispose();
    }
  }

  /**
   * Figures of the last pull. `snapshot` is `delta` (adds and updates only: nothing is
   * deactivated for absence, invariant 4) when rows of REG, REG_CONTACT or REG_STU_CONTACT
   * were lost (unrepairable or invalid): the file set is then incomplete.
   */
  stats(): ESchoolPullStats {
    const lost = this.figures.lostRows;
    const partial = (lost.students ?? 0) + (lost.contacts ?? 0) + (lost.studentContacts ?? 0) > 0;
    return {
      httpRequests: 0,
      httpByStatus: {},
      snapshot: partial ? 'delta' : 'full',
      figures: { ...this.figures, records: { ...this.figures.records }, lostRows: { ...lost } },
    };
  }

  // ---- file set ---------------------------------------------------------------------------

  private async prepare(): Promise<{ set: FileSet; layouts: Map<ESchoolFileKind, Layout> }> {
    const src = this.config.source;
    let set: FileSet;
    if (src.type === 'folder') set = await openFolderFileSet(this.config, src.path);
    else {
      if (!this.sftp) throw new Error('eSchoolPLUS SFTP source without resolved credentials');
      set = await openSftpFileSet(this.config, this.sftp, this.logger);
    }
    try {
      const layouts = new Map<ESchoolFileKind, Layout>();
      for (const file of set.files.values()) layouts.set(file.kind, await this.layout(set, file));
      return { set, layouts };
    } catch (err) {
      await set.dispose();
      throw err;
    }
  }

  /** The file's columns (header or definition), checked against the definition. */
  private async layout(set: FileSet, file: ResolvedFile): Promise<Layout> {
    const def = this.config.files[file.kind];
    const { delimiter, encoding, headerRow, endOfRecordMarker } = this.config.format;
    const table = TABLE_OF[file.kind];
    const fail = (what: string) =>
      new SisPayloadError(
        `eSchoolPLUS file set (${set.origin}): ${file.name} (${table}): ${what}; nothing was changed`,
      );
    if (
      endOfRecordMarker !== null &&
      !(await hasMarkerColumn(file.path, {
        encoding,
        delimiter,
        marker: endOfRecordMarker,
        skip: headerRow ? 1 : 0,
      }))
    )
      throw fail(
        `the end-of-record marker column \`${endOfRecordMarker}\` is not in ${file.name} (no row ends with ` +
          `"${delimiter}${endOfRecordMarker}"): add the column to the Download Definition, or remove ` +
          'format.endOfRecordMarker from the district file',
      );
    let columns: string[];
    if (headerRow) {
      const header = await readHeader(file.path, encoding, delimiter);
      if (header.length === 0) throw fail('the file is empty (no header row)');
      columns = endOfRecordMarker !== null ? header.slice(0, -1) : header;
      if (def?.columns) {
        const n = Math.max(def.columns.length, columns.length);
        for (let i = 0; i < n; i++) {
          if (columns[i] !== def.columns[i])
            throw fail(
              `header column ${i + 1} is "${columns[i] ?? '(none)'}", the definition says "${def.columns[i] ?? '(none)'}"`,
            );
        }
      }
    } else {
      columns = [...(def?.columns ?? [])];
    }
    const seen = new Set<string>();
    for (const c of columns) {
      if (seen.has(c)) throw fail(`column ${c} appears twice in the header`);
      seen.add(c);
    }
    const required = [...REQUIRED_COLUMNS[file.kind]];
    if (file.kind === 'contacts' && !this.config.files.studentContacts) {
      // Without REG_STU_CONTACT the contact type must be joined into REG_CONTACT (§6.4).
      required.push('CONTACT_TYPE');
    }
    for (const c of required) {
      if (!seen.has(c)) {
        const hint =
          file.kind === 'contacts' && c === 'CONTACT_TYPE'
            ? ' (without REG_STU_CONTACT the definition must join CONTACT_TYPE into REG_CONTACT: guardians cannot be told from emergency contacts and addresses otherwise)'
            : '';
        throw fail(`column ${c} is missing from the ${headerRow ? 'header' : 'definition'}${hint}`);
      }
    }
    const free = def?.freeTextColumn ?? (file.kind === 'studentContacts' ? 'COMMENTS' : undefined);
    const freeTextIndex = free === undefined ? undefined : columns.indexOf(free);
    if (def?.freeTextColumn && freeTextIndex === -1)
      throw fail(`the free-text column ${def.freeTextColumn} is not in the file`);
    return {
      file,
      columns,
      freeTextIndex: freeTextIndex === undefined || freeTextIndex < 0 ? undefined : freeTextIndex,
    };
  }

  /**
   * Rows of one file parsed with `schema`. Physical lines that form no record and records
   * that fail the schema are rejects naming the file and line numbers. Calls `onReject` for
   * each (the caller may mark data incomplete).
   */
  private async *rows<S extends z.ZodType>(
    ctx: PullContext,
    p: { layouts: Map<ESchoolFileKind, Layout> },
    kind: ESchoolFileKind,
    schema: S,
    onReject?: () => void,
  ): AsyncGenerator<{ row: z.output<S>; where: string }> {
    const layout = p.layouts.get(kind);
    if (!layout) return;
    const { delimiter, encoding, headerRow, endOfRecordMarker } = this.config.format;
    const name = layout.file.name;
    const entity = ENTITY_OF[kind];
    const assembler = new RecordAssembler({
      columns: layout.columns.length,
      delimiter,
      marker: endOfRecordMarker,
      freeTextIndex: layout.freeTextIndex,
    });
    const f = this.figures;
    f.records[name] = 0;
    // Only the columns the row schema reads go into the object it parses (it drops the rest).
    const known = schema instanceof z.ZodObject ? new Set(Object.keys(schema.shape)) : undefined;
    const used = layout.columns
      .map((c, i) => [c, i] as const)
      .filter(([c]) => known === undefined || known.has(c));
    const lines = (a: number, b: number) => (a === b ? `line ${a}` : `lines ${a}-${b}`);
    const handle = function* (
      out: ReturnType<RecordAssembler['push']>,
    ): Generator<{ row: z.output<S>; where: string }> {
      for (const r of out.rejects) {
        f.unrepairable++;
        f.lostRows[kind] = (f.lostRows[kind] ?? 0) + 1;
        onReject?.();
        ctx.reject({
          entity,
          recordId: `${name} ${lines(r.firstLine, r.lastLine)}`,
          reason: `unrepairable row: ${r.reason}`,
        });
      }
      for (const rec of out.records) {
        const obj: Record<string, string> = {};
        for (const [c, i] of used) obj[c] = rec.values[i] ?? '';
        const where = `${name} ${lines(rec.firstLine, rec.lastLine)}`;
        const parsed = schema.safeParse(obj);
        if (!parsed.success) {
          f.lostRows[kind] = (f.lostRows[kind] ?? 0) + 1;
          onReject?.();
          ctx.reject({ entity, recordId: where, reason: formatZodIssues(parsed.error) });
          continue;
        }
        f.records[name] = (f.records[name] ?? 0) + 1;
        if (rec.lastLine > rec.firstLine) f.rejoinedLineBreaks++;
        if (rec.foldedDelimiters) f.foldedDelimiters++;
        yield { row: parsed.data, where };
      }
    };
    for await (const [text, no] of fileLines(layout.file.path, encoding)) {
      if (no % 1000 === 0) ctx.signal.throwIfAborted(); // shutdown
      if (headerRow && no === 1) continue;
      yield* handle(assembler.push(text, no));
    }
    yield* handle(assembler.end());
  }

  // ---- roster -----------------------------------------------------------------------------

  /**
   * The join (ADR 0013): every file is read once, in the order the in-memory join read them
   * (REG, REG_CONTACT_PHONE, REG_CONTACT, REG_STU_CONTACT), so rejects come in the same
   * order; the fields the chunks need go to a temporary SQLite file (`join.ts`), which is
   * removed when the generator ends, fails or is abandoned. The heap keeps the roster's
   * student ids and the qualifying contact ids (for the sort), never the rows.
   */
  private async *roster(
    ctx: PullContext,
    p: { set: FileSet; layouts: Map<ESchoolFileKind, Layout> },
  ): AsyncGenerator<RosterChunk> {
    const store = new ESchoolJoinStore(this.tempDir);
    try {
      yield* this.joined(ctx, p, store);
    } finally {
      store.close();
    }
  }

  private async *joined(
    ctx: PullContext,
    p: { set: FileSet; layouts: Map<ESchoolFileKind, Layout> },
    store: ESchoolJoinStore,
  ): AsyncGenerator<RosterChunk> {
    const cfg = this.config;
    const withLinks = this.capabilities.guardianLinks;

    // Students first: links and accounts are made for students on the roster only.
    const rosterIds: string[] = [];
    store.begin();
    for await (const { row, where } of this.rows(ctx, p, 'students', EsStudentRow)) {
      const m = mapESchoolStudent(row, cfg.activeStatuses, where);
      if (!store.addReg(row.STUDENT_ID, m?.ok ? JSON.stringify(m.student) : null)) {
        ctx.reject({
          entity: 'student',
          recordId: where,
          reason: `STUDENT_ID ${row.STUDENT_ID} appears twice; the first row is used`,
        });
        continue;
      }
      if (m === undefined) continue;
      if (!m.ok) ctx.reject(m.reject);
      else rosterIds.push(row.STUDENT_ID);
    }
    rosterIds.sort(byNumericId);
    const studentOf = (id: string): Student => {
      const json = store.regStudent(id);
      if (typeof json !== 'string') throw new Error(`eSchoolPLUS join: student ${id} vanished`);
      return JSON.parse(json) as Student;
    };
    const size = cfg.pageSize;

    if (!withLinks) {
      // Link-less (ADR 0018): a student chunk needs REG alone, so the student chunks go out
      // while the contact files are read beside them (the apply step works meanwhile). A
      // contact file that fails then fails the pull after some students were written: the
      // run fails and deactivates nothing (invariant 4), as a failed HTTP pull does.
      const stop = new AbortController();
      const readCtx: PullContext = { ...ctx, signal: AbortSignal.any([ctx.signal, stop.signal]) };
      let failure: { err: unknown } | undefined;
      const reading = this.readContacts(readCtx, p, store, rosterIds).catch((err: unknown) => {
        failure = { err };
        return undefined;
      });
      try {
        for (let i = 0; i < rosterIds.length; i += size) {
          if (failure) throw failure.err;
          yield {
            students: rosterIds.slice(i, i + size).map(studentOf),
            guardians: [],
            relationships: [],
            relationshipsSupplied: false,
          };
        }
        await reading;
        if (failure) throw failure.err;
      } finally {
        // Abandoned or failed: stop the reader and let it settle before the store is closed.
        stop.abort(new Error('eSchoolPLUS pull stopped'));
        await reading;
      }
      // Parent accounts in chunks of their own (no student, no relationship), mapped as they
      // are read back in rank order (the pull maps while apply writes the previous chunk);
      // the student ids are released first.
      rosterIds.length = 0;
      let page: Guardian[] = [];
      for (const g of this.mappedGuardians(ctx, store, p.layouts.has('studentContacts'))) {
        page.push(g);
        if (page.length < size) continue;
        yield { students: [], guardians: page, relationships: [], relationshipsSupplied: false };
        page = [];
      }
      if (page.length > 0)
        yield { students: [], guardians: page, relationships: [], relationshipsSupplied: false };
      return;
    }

    const { linksIncomplete } = await this.readContacts(ctx, p, store, rosterIds);
    // Link mode: a chunk looks its guardians up by id, so every guardian is mapped and stored
    // first (one transaction).
    store.begin();
    let rank = 0;
    for (const g of this.mappedGuardians(ctx, store, p.layouts.has('studentContacts'))) {
      store.addGuardian(++rank, g.sourcedId, JSON.stringify(g));
      if (rank % 2000 === 0) await breathe(ctx);
    }
    store.commit();
    for (let i = 0; i < rosterIds.length; i += size) {
      const page = rosterIds.slice(i, i + size).map(studentOf);
      const relationships: Relationship[] = [];
      const chunkGuardians = new Map<string, Guardian>();
      let complete = !linksIncomplete;
      for (const s of page) {
        if (store.isIncomplete(s.sourcedId)) complete = false;
        const linked = new Set<string>();
        for (const l of store.linksOf(s.sourcedId)) {
          if (linked.has(l.contactId)) continue; // the first row of a pair is used
          linked.add(l.contactId);
          const g = store.guardian(l.contactId);
          if (g === undefined) {
            complete = false; // the guardian was rejected
            continue;
          }
          relationships.push(JSON.parse(l.rel) as Relationship);
          if (!chunkGuardians.has(l.contactId))
            chunkGuardians.set(l.contactId, JSON.parse(g) as Guardian);
        }
      }
      yield {
        students: page,
        guardians: [...chunkGuardians.keys()].sort(byNumericId).flatMap(id => {
          const g = chunkGuardians.get(id);
          return g ? [g] : [];
        }),
        relationships,
        relationshipsSupplied: complete,
      };
    }
  }

  /**
   * The ranked guardian contacts (`readContacts`) mapped to canonical guardians, in output
   * order. A contact whose mapping fails is a reject and is left out (in link mode its
   * students' links are then not supplied: the chunk sees a link without its guardian).
   */
  private *mappedGuardians(
    ctx: PullContext,
    store: ESchoolJoinStore,
    withParentText: boolean,
  ): Generator<Guardian> {
    for (const { contact, phone, parentText } of store.rankedContacts(withParentText)) {
      const m = mapESchoolGuardian(
        esContact(contact, []),
        phone ?? undefined,
        parentText === null ? [] : [parentText],
      );
      if (!m.ok) {
        ctx.reject(m.reject);
        continue;
      }
      if (m.emailReject) ctx.reject(m.emailReject);
      yield m.guardian;
    }
  }

  /**
   * Read REG_CONTACT_PHONE, REG_CONTACT and REG_STU_CONTACT into the join store (after REG),
   * decide who is a guardian and rank the guardian contacts in the output order
   * (`rankContacts`; mapped later by `mappedGuardians`); commits the store.
   * `rosterIds`: the roster's student ids (only read, at the start). Throws the file
   * system's error, or the abort reason of `ctx.signal`.
   */
  private async readContacts(
    ctx: PullContext,
    p: { set: FileSet; layouts: Map<ESchoolFileKind, Layout> },
    store: ESchoolJoinStore,
    rosterIds: readonly string[],
  ): Promise<{ linksIncomplete: boolean }> {
    const cfg = this.config;
    const f = this.figures;
    const withLinks = this.capabilities.guardianLinks;
    const withStudentContacts = p.layouts.has('studentContacts');
    const fileName = (kind: ESchoolFileKind, fallback: string) =>
      p.layouts.get(kind)?.file.name ?? fallback;
    const students = rosterIds.length;
    const onRoster = withStudentContacts ? new Set(rosterIds) : undefined;
    store.begin();

    // Phones (the preferred one per contact) and people (the first row of each contact).
    for await (const { row } of this.rows(ctx, p, 'contactPhones', EsContactPhoneRow)) {
      if (row.PHONE === undefined || row.PHONE.trim() === '') continue;
      store.offerPhone(row.CONTACT_ID, row.PHONE, row.PHONE_PRIORITY ?? Number.MAX_SAFE_INTEGER);
    }
    let typeSeq = 0;
    for await (const { row, where } of this.rows(ctx, p, 'contacts', EsContactRow)) {
      const c = store.addContact(row.CONTACT_ID, row.FIRST_NAME, row.LAST_NAME, row.EMAIL, where);
      if (!withStudentContacts && row.CONTACT_TYPE)
        store.addContactType(c.seq, ++typeSeq, row.CONTACT_TYPE, row.CONTACT_PRIORITY);
    }

    // Who is a guardian (and, in link mode, of whom): qualifying ids in first-seen order.
    const qualifying: string[] = [];
    let linksIncomplete = false;
    if (onRoster) {
      const markIncomplete = () => {
        linksIncomplete = true;
      };
      for await (const { row, where } of this.rows(
        ctx,
        p,
        'studentContacts',
        EsStudentContactRow,
        markIncomplete,
      )) {
        if (!onRoster.has(row.STUDENT_ID)) {
          // An inactive (or rejected) student's contacts are skipped; a student REG does not have is reported.
          if (store.regStudent(row.STUDENT_ID) === undefined)
            ctx.reject({
              entity: 'relationship',
              recordId: `${row.CONTACT_ID}->${row.STUDENT_ID} (${where})`,
              reason: `STUDENT_ID ${row.STUDENT_ID} is not in ${fileName('students', 'REG')} (its row is missing or was rejected); row not used`,
            });
          continue;
        }
        const v = judgeStudentContact(row, cfg.contacts);
        if (!v.use) {
          if (v.kind === 'address') f.addressRows++;
          else if (v.kind === 'not-guardian') f.otherContactRows++;
          else if (v.kind === 'policy') f.policyRows++;
          else if ('reason' in v) {
            if (v.kind === 'parked') f.parkedRows++;
            else store.markIncomplete(row.STUDENT_ID);
            ctx.reject({
              entity: 'relationship',
              recordId: `${row.CONTACT_ID}->${row.STUDENT_ID} (${where})`,
              reason: v.reason,
            });
          }
          continue;
        }
        if (!store.hasContact(row.CONTACT_ID)) {
          store.markIncomplete(row.STUDENT_ID);
          ctx.reject({
            entity: 'relationship',
            recordId: `${row.CONTACT_ID}->${row.STUDENT_ID} (${where})`,
            reason: `CONTACT_ID ${row.CONTACT_ID} is not in ${fileName('contacts', 'REG_CONTACT')} (its row is missing or was rejected)`,
          });
          continue;
        }
        f.guardianRows++;
        const rel = mapESchoolRelationship(row, cfg.relationCodes);
        // The role depends only on whether some relationship is a parent one: keep one such text.
        const parentText =
          rel.relationship !== undefined && roleFromRelationships([rel.relationship]) === 'parent'
            ? rel.relationship
            : undefined;
        if (store.qualify(row.CONTACT_ID, parentText)) qualifying.push(row.CONTACT_ID);
        if (withLinks) store.addLink(row.STUDENT_ID, row.CONTACT_ID, JSON.stringify(rel));
      }
    } else {
      let judged = 0;
      for (const { contact, types } of store.contactsWithTypes()) {
        if (++judged % 2000 === 0) await breathe(ctx);
        for (const t of types) {
          const type = t.type.toUpperCase();
          if (type === 'P' || type === 'M') f.addressRows++;
          else if (type === 'C' || type === 'O') f.otherContactRows++;
          else if (
            type === 'G' &&
            cfg.contacts.parkedPriority !== null &&
            t.priority === cfg.contacts.parkedPriority
          )
            f.parkedRows++;
          else if (type === 'G') f.guardianRows++;
        }
        const j = judgeJoinedContact(esContact(contact, types), cfg.contacts.parkedPriority);
        if (j.reject) ctx.reject(j.reject);
        if (j.guardian) qualifying.push(contact.id);
      }
    }

    // Guardians, in the output order (a stable sort of the first-seen order, as before): the
    // ids go to the join store's rank table and leave the heap.
    qualifying.sort(byNumericId);
    const guardianContacts = qualifying.length;
    store.rankContacts(qualifying);
    qualifying.length = 0; // released
    store.commit();

    ctx.logger.info(
      { students, guardianContacts, links: withLinks, figures: f },
      'eSchoolPLUS files read',
    );
    if (this.stats().snapshot === 'delta')
      ctx.logger.warn(
        { lostRows: f.lostRows },
        'eSchoolPLUS file set incomplete (rows lost, see rejects): this run adds and updates but deactivates nothing',
      );
    return { linksIncomplete };
  }
}

/**
 * Let the event loop run (queue lock renewals, shutdown) during long synchronous stretches
 * of the join; throws the abort reason on shutdown.
 */
async function breathe(ctx: PullContext): Promise<void> {
  await new Promise<void>(resolve => setImmediate(resolve));
  ctx.signal.throwIfAborted();
}

/** A contact as the mapping functions take it (only the fields they read are kept on disk). */
function esContact(
  c: JoinedContact,
  types: { type: string; priority?: number | undefined }[],
): ESchoolContact {
  return {
    row: {
      CONTACT_ID: c.id,
      FIRST_NAME: c.first ?? undefined,
      MIDDLE_NAME: undefined,
      LAST_NAME: c.last ?? undefined,
      EMAIL: c.email ?? undefined,
      LOGIN_ID: undefined,
      CONTACT_TYPE: undefined,
      CONTACT_PRIORITY: undefined,
    },
    types,
    where: c.at,
  };
}
