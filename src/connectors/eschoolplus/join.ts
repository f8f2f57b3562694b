/**
 * The disk-backed join of an eSchoolPLUS file set (ADR 0013). The files are unordered
 * exports, so a roster chunk can only be built once every file has been read; instead of
 * holding every parsed row in the heap, the connector writes the few fields it needs into
 * a private temporary SQLite file (better-sqlite3) and reads the chunks back page by page:
 *
 * - `reg`: every REG `STUDENT_ID` (the duplicate check) with the mapped student (JSON) when
 *   the student is on the roster;
 * - `phone`: the preferred phone of each contact (lowest `PHONE_PRIORITY`, then file order),
 *   kept by an upsert while REG_CONTACT_PHONE is read;
 * - `contact`: the first REG_CONTACT row of each `CONTACT_ID` (names, email, where), in file
 *   order; `ctype` the `CONTACT_TYPE`/`CONTACT_PRIORITY` pairs joined into REG_CONTACT;
 * - `link`: the REG_STU_CONTACT rows that make a guardian link (relationship as JSON);
 *   `qual`: the qualifying contacts with one parent-role relationship text, if any;
 * - `incomplete`: students whose links are "not supplied" this run;
 * - `ranked`: the guardian contact ids in output order; `guardian`: the mapped guardians
 *   (JSON) by rank, in link mode only (link-less chunks map them as they are read, ADR 0018).
 *
 * What stays in the heap is ids: the roster's student ids and the qualifying contact ids,
 * sorted in memory with the same collator the in-memory join used (about 80 bytes per id).
 * The file lives in a folder made with `mkdtemp` under `dir` (default the OS temporary
 * folder) and `close()` removes it; journal and sync are off because the file never outlives
 * the pull.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** Prefix of the temporary folders (one per pull). */
export const JOIN_DIR_PREFIX = 'gsync-esp-join-';

const SCHEMA = `
  CREATE TABLE reg (id TEXT PRIMARY KEY, student TEXT) WITHOUT ROWID;
  CREATE TABLE phone (contact_id TEXT PRIMARY KEY, phone TEXT NOT NULL, priority INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE contact (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, first TEXT, last TEXT, email TEXT, at TEXT NOT NULL);
  CREATE TABLE ctype (contact_seq INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, priority INTEGER, PRIMARY KEY (contact_seq, seq)) WITHOUT ROWID;
  CREATE TABLE link (seq INTEGER PRIMARY KEY, student_id TEXT NOT NULL, contact_id TEXT NOT NULL, rel TEXT NOT NULL);
  CREATE TABLE qual (contact_id TEXT PRIMARY KEY, parent_text TEXT) WITHOUT ROWID;
  CREATE TABLE incomplete (student_id TEXT PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE guardian (rank INTEGER PRIMARY KEY, id TEXT NOT NULL, json TEXT NOT NULL);
`;

/** First REG_CONTACT row of a contact, as kept on disk. */
export interface JoinedContact {
  seq: number;
  id: string;
  first: string | null;
  last: string | null;
  email: string | null;
  at: string;
}

/** The temporary join store of one pull. Synchronous (better-sqlite3); not shared. */
export class ESchoolJoinStore {
  readonly dir: string;
  private readonly db: Database.Database;
  private inTx = false;
  private closed = false;

  private readonly st: ReturnType<ESchoolJoinStore['prepareAll']>;

  /** Creates the folder and the file. Throws the file system's or SQLite's error. */
  constructor(parent: string = tmpdir()) {
    this.dir = mkdtempSync(join(parent, JOIN_DIR_PREFIX));
    try {
      this.db = new Database(join(this.dir, 'join.sqlite'));
      this.db.pragma('journal_mode = OFF');
      this.db.pragma('synchronous = OFF');
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('temp_store = FILE');
      this.db.pragma('cache_size = -32768'); // 32 MiB of page cache
      this.db.exec(SCHEMA);
      this.st = this.prepareAll();
    } catch (err) {
      rmSync(this.dir, { recursive: true, force: true });
      throw err;
    }
  }

  private prepareAll() {
    const db = this.db;
    return {
      regInsert: db.prepare('INSERT OR IGNORE INTO reg (id, student) VALUES (?, ?)'),
      regGet: db.prepare('SELECT student FROM reg WHERE id = ?').pluck(),
      phoneUpsert: db.prepare(
        `INSERT INTO phone (contact_id, phone, priority) VALUES (?, ?, ?)
         ON CONFLICT (contact_id) DO UPDATE SET phone = excluded.phone, priority = excluded.priority
         WHERE excluded.priority < phone.priority`,
      ),
      contactInsert: db.prepare(
        'INSERT OR IGNORE INTO contact (id, first, last, email, at) VALUES (?, ?, ?, ?, ?)',
      ),
      contactSeq: db.prepare('SELECT seq FROM contact WHERE id = ?').pluck(),
      ctypeInsert: db.prepare(
        'INSERT INTO ctype (contact_seq, seq, type, priority) VALUES (?, ?, ?, ?)',
      ),
      // the types with their contact's first row, joined in SQL (one call per page)
      ctypePage: db
        .prepare(
          `SELECT t.contact_seq, t.seq, t.type, t.priority, c.id, c.first, c.last, c.email, c.at
           FROM ctype t JOIN contact c ON c.seq = t.contact_seq
           WHERE (t.contact_seq, t.seq) > (?, ?) ORDER BY t.contact_seq, t.seq LIMIT ?`,
        )
        .raw(),
      linkInsert: db.prepare('INSERT INTO link (student_id, contact_id, rel) VALUES (?, ?, ?)'),
      qualInsert: db.prepare('INSERT OR IGNORE INTO qual (contact_id, parent_text) VALUES (?, ?)'),
      qualParent: db.prepare(
        'UPDATE qual SET parent_text = ? WHERE contact_id = ? AND parent_text IS NULL',
      ),
      incompleteInsert: db.prepare('INSERT OR IGNORE INTO incomplete (student_id) VALUES (?)'),
      incompleteHas: db.prepare('SELECT 1 FROM incomplete WHERE student_id = ?').pluck(),
      guardianInsert: db.prepare('INSERT INTO guardian (rank, id, json) VALUES (?, ?, ?)'),
    };
  }

  /** Open a write transaction (idempotent). Rows are written in big transactions. */
  begin(): void {
    if (this.inTx) return;
    this.db.exec('BEGIN');
    this.inTx = true;
  }

  /** Commit the open transaction, if any. */
  commit(): void {
    if (!this.inTx) return;
    this.db.exec('COMMIT');
    this.inTx = false;
  }

  // ---- REG ----------------------------------------------------------------------------------

  /**
   * Record a REG row's `STUDENT_ID` with its mapped student (JSON) or null when it is not
   * on the roster. False when the id was already recorded (a duplicate row: nothing written).
   */
  addReg(id: string, studentJson: string | null): boolean {
    return this.st.regInsert.run(id, studentJson).changes > 0;
  }

  /** `undefined`: not in REG; `null`: in REG but not on the roster; else the student JSON. */
  regStudent(id: string): string | null | undefined {
    return this.st.regGet.get(id) as string | null | undefined;
  }

  // ---- REG_CONTACT_PHONE --------------------------------------------------------------------

  /** Offer a phone: kept when the contact has none yet or `priority` is lower (file order wins ties). */
  offerPhone(contactId: string, phone: string, priority: number): void {
    this.st.phoneUpsert.run(contactId, phone, priority);
  }

  // ---- REG_CONTACT --------------------------------------------------------------------------

  /** Record a REG_CONTACT row: the first row of a `CONTACT_ID` is kept. Returns the contact's seq. */
  addContact(
    id: string,
    first: string | undefined,
    last: string | undefined,
    email: string | undefined,
    at: string,
  ): { seq: number; isNew: boolean } {
    const r = this.st.contactInsert.run(id, first ?? null, last ?? null, email ?? null, at);
    if (r.changes > 0) return { seq: Number(r.lastInsertRowid), isNew: true };
    return { seq: this.st.contactSeq.get(id) as number, isNew: false };
  }

  /** Has REG_CONTACT a row for `id`? */
  hasContact(id: string): boolean {
    return this.st.contactSeq.get(id) !== undefined;
  }

  /** A contact's type joined into REG_CONTACT (`seq` orders the pairs of one contact). */
  addContactType(
    contactSeq: number,
    seq: number,
    type: string,
    priority: number | undefined,
  ): void {
    this.st.ctypeInsert.run(contactSeq, seq, type, priority ?? null);
  }

  /**
   * Contacts that have joined types, in REG_CONTACT order (first row of each contact), each
   * with its types in file order. Read in pages of `pageSize` type rows.
   */
  *contactsWithTypes(
    pageSize = 5000,
  ): Generator<{ contact: JoinedContact; types: { type: string; priority?: number }[] }> {
    let after: [number, number] = [0, -1];
    let cur: { contact: JoinedContact; types: { type: string; priority?: number }[] } | undefined;
    for (;;) {
      const rows = this.st.ctypePage.all(after[0], after[1], pageSize) as [
        number,
        number,
        string,
        number | null,
        string,
        string | null,
        string | null,
        string | null,
        string,
      ][];
      for (const [contactSeq, seq, type, priority, id, first, last, email, at] of rows) {
        if (!cur || cur.contact.seq !== contactSeq) {
          if (cur) yield cur;
          cur = { contact: { seq: contactSeq, id, first, last, email, at }, types: [] };
        }
        cur.types.push(priority === null ? { type } : { type, priority });
        after = [contactSeq, seq];
      }
      if (rows.length < pageSize) break;
    }
    if (cur) yield cur;
  }

  // ---- REG_STU_CONTACT ----------------------------------------------------------------------

  /** A row that makes a guardian link (`rel`: the relationship as JSON). */
  addLink(studentId: string, contactId: string, rel: string): void {
    this.st.linkInsert.run(studentId, contactId, rel);
  }

  /**
   * Record that `contactId` qualifies as a guardian; `parentText` is the row's relationship
   * text when it gives the parent role. True the first time a contact qualifies.
   */
  qualify(contactId: string, parentText: string | undefined): boolean {
    const isNew = this.st.qualInsert.run(contactId, parentText ?? null).changes > 0;
    if (!isNew && parentText !== undefined) this.st.qualParent.run(parentText, contactId);
    return isNew;
  }

  /** The links of students, after every link is written (builds the index on first use). */
  linksOf(studentId: string): { contactId: string; rel: string }[] {
    if (!this.linkByStudent) {
      this.commit();
      this.db.exec('CREATE INDEX link_student ON link (student_id, seq)');
      this.linkByStudent = this.db.prepare(
        'SELECT contact_id AS contactId, rel FROM link WHERE student_id = ? ORDER BY seq',
      );
    }
    return this.linkByStudent.all(studentId) as { contactId: string; rel: string }[];
  }

  private linkByStudent: Database.Statement | undefined;

  /** Mark a student's links "not supplied" this run. */
  markIncomplete(studentId: string): void {
    this.st.incompleteInsert.run(studentId);
  }

  isIncomplete(studentId: string): boolean {
    return this.st.incompleteHas.get(studentId) !== undefined;
  }

  // ---- guardians ----------------------------------------------------------------------------

  /**
   * Write the qualifying contact ids in their output order (`sortedIds`, ranks 1…n) to the
   * `ranked` table, in the open write transaction; the caller may release the array then.
   */
  rankContacts(sortedIds: readonly string[]): void {
    this.begin();
    this.db.exec('CREATE TABLE ranked (rank INTEGER PRIMARY KEY, contact_id TEXT NOT NULL)');
    const ins = this.db.prepare('INSERT INTO ranked (rank, contact_id) VALUES (?, ?)');
    sortedIds.forEach((id, i) => ins.run(i + 1, id));
  }

  /**
   * The ranked contacts (`rankContacts`) joined with their REG_CONTACT row, phone and parent
   * text, in rank order, read in pages of `pageSize`. Reads inside whatever transaction is
   * open: a caller that writes the mapped guardians (`addGuardian`) meanwhile keeps one open
   * and commits once.
   */
  *rankedContacts(
    withParentText: boolean,
    pageSize = 2000,
  ): Generator<{
    contact: JoinedContact;
    phone: string | null;
    parentText: string | null;
  }> {
    const page = this.db
      .prepare(
        `SELECT r.rank, c.seq, c.id, c.first, c.last, c.email, c.at, p.phone,
                ${withParentText ? 'q.parent_text' : 'NULL'}
         FROM ranked r JOIN contact c ON c.id = r.contact_id
         LEFT JOIN phone p ON p.contact_id = r.contact_id
         ${withParentText ? 'LEFT JOIN qual q ON q.contact_id = r.contact_id' : ''}
         WHERE r.rank > ? ORDER BY r.rank LIMIT ?`,
      )
      .raw();
    let after = 0;
    for (;;) {
      const rows = page.all(after, pageSize) as [
        number,
        number,
        string,
        string | null,
        string | null,
        string | null,
        string,
        string | null,
        string | null,
      ][];
      for (const [rank, seq, id, first, last, email, at, phone, parentText] of rows) {
        after = rank;
        yield { contact: { seq, id, first, last, email, at }, phone, parentText };
      }
      if (rows.length < pageSize) break;
    }
  }

  /** Store a mapped guardian at `rank` (its place in the output order). */
  addGuardian(rank: number, id: string, json: string): void {
    this.st.guardianInsert.run(rank, id, json);
  }

  private guardianById: Database.Statement | undefined;

  /** The guardian's JSON, or undefined when it was not mapped (after every guardian is written). */
  guardian(id: string): string | undefined {
    if (!this.guardianById) {
      this.commit();
      this.db.exec('CREATE UNIQUE INDEX guardian_id ON guardian (id)');
      this.guardianById = this.db.prepare('SELECT json FROM guardian WHERE id = ?').pluck();
    }
    return this.guardianById.get(id) as string | undefined;
  }

  /** Close the database and remove the folder (idempotent; never throws for a missing folder). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.db.open) this.db.close();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
