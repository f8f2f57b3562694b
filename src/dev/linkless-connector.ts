/**
 * A link-less connector over a synthetic district, for tests and the demo: it delivers
 * schools, active students and the guardians a SIS export would list, but no
 * student↔guardian relationships (`capabilities.guardianLinks: false`), the way an
 * eSchoolPLUS contacts export without relationship rows does (sis-reference §6.4). The sync
 * then creates the parent accounts but no links, and the access-code finalize step gives
 * every active student a code.
 *
 * Reads the generator's in-memory data directly (no HTTP). Guardians are the contacts with
 * at least one current, data-access link to an active student of the chunk; records are
 * validated with the canonical zod schemas (failures become rejects).
 */
import { Guardian, School, Student, type RosterChunk } from '../mapping/canonical.js';
import type {
  ConnectorCapabilities,
  ConnectorKind,
  PullContext,
  PullStats,
  SisConnector,
} from '../connectors/types.js';
import type { PsContactRow, SyntheticDistrict } from './district-generator.js';

export interface LinklessConnectorOptions {
  /** Students per chunk (default 100). */
  pageSize?: number;
  /** Reported kind (default `eschoolplus`: the SIS this imitates). */
  kind?: ConnectorKind;
}

export class SyntheticLinklessConnector implements SisConnector {
  readonly kind: ConnectorKind;
  readonly capabilities: ConnectorCapabilities = {
    guardianLinks: false,
    enrollments: false,
    delta: false,
  };
  private expected: number | undefined;

  constructor(
    private readonly district: SyntheticDistrict,
    private readonly opts: LinklessConnectorOptions = {},
  ) {
    this.kind = opts.kind ?? 'eschoolplus';
  }

  checkConnection(): Promise<void> {
    return Promise.resolve();
  }

  readSchools(ctx: PullContext): Promise<School[]> {
    const out: School[] = [];
    for (const s of this.district.schools) {
      const r = School.safeParse({ sourcedId: String(s.id), name: s.name });
      if (r.success) out.push(r.data);
      else ctx.reject({ entity: 'school', recordId: String(s.id), reason: r.error.message });
    }
    return Promise.resolve(out);
  }

  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const size = Math.max(1, this.opts.pageSize ?? 100);
    const active = this.district.students.filter(s => s.enroll_status === 'A');
    this.expected = active.length;
    const contactsOf = new Map<number, PsContactRow[]>();
    for (const c of this.district.contacts) {
      for (const l of c.links) {
        if (!l.canAccessData || !l.detailActive) continue;
        const list = contactsOf.get(l.studentDcid);
        if (!list) contactsOf.set(l.studentDcid, [c]);
        else if (!list.includes(c)) list.push(c);
      }
    }
    for (let i = 0; i < active.length; i += size) {
      // Let other work (the queue's apply jobs) run between chunks, like network I/O would.
      await new Promise<void>(resolve => setImmediate(resolve));
      ctx.signal.throwIfAborted();
      const students: Student[] = [];
      const guardians = new Map<string, Guardian>();
      for (const s of active.slice(i, i + size)) {
        const st = Student.safeParse({
          sourcedId: String(s.id),
          uniqueId: String(s.local_id),
          givenName: s.first_name,
          familyName: s.last_name,
          ...(s.email ? { email: s.email } : {}),
          schoolSourcedIds: [String(s.school_id)],
          grade: s.grade_level === 0 ? 'K' : String(s.grade_level),
          status: 'active',
        });
        if (!st.success) {
          ctx.reject({ entity: 'student', recordId: String(s.id), reason: st.error.message });
          continue;
        }
        students.push(st.data);
        for (const c of contactsOf.get(s.id) ?? []) {
          const id = String(c.contactId);
          if (guardians.has(id)) continue;
          const g = Guardian.safeParse({
            sourcedId: id,
            givenName: c.firstName,
            familyName: c.lastName,
            ...(c.email?.trim() ? { email: c.email.trim() } : {}),
            ...(c.phone ? { phone: c.phone } : {}),
            role: 'parent',
            status: 'active',
          });
          if (g.success) guardians.set(id, g.data);
          else ctx.reject({ entity: 'guardian', recordId: id, reason: g.error.message });
        }
      }
      yield {
        students,
        guardians: [...guardians.values()],
        relationships: [],
        relationshipsSupplied: false,
      };
    }
  }

  stats(): PullStats {
    return { httpRequests: 0, httpByStatus: {}, expectedStudents: this.expected };
  }
}
