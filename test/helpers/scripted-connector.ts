/**
 * A connector whose snapshot the test writes record by record (canonical students, guardians
 * and relationships, validated by the canonical zod schemas like any connector's output):
 * for reproductions that need exact ids (a blanked relationship list, a re-keyed district).
 * The pipeline around it (BullMQ, Redis, SQLite, finalize) is the real one.
 */
import {
  Guardian,
  Relationship,
  School,
  Student,
  type RosterChunk,
} from '../../src/mapping/canonical.js';
import type {
  ConnectorCapabilities,
  ConnectorKind,
  PullContext,
  PullStats,
  SisConnector,
} from '../../src/connectors/types.js';

/** One snapshot: what the next pulls return (replace it between runs). */
export interface ScriptedSnapshot {
  schools: School[];
  students: Student[];
  guardians: Guardian[];
  relationships: Relationship[];
  /** Students per chunk (default: all in one chunk). */
  chunkSize?: number;
}

export class ScriptedConnector implements SisConnector {
  readonly kind: ConnectorKind = 'oneroster';
  readonly capabilities: ConnectorCapabilities = {
    guardianLinks: true,
    enrollments: false,
    delta: false,
  };
  snapshot: ScriptedSnapshot = { schools: [], students: [], guardians: [], relationships: [] };
  private requests = 0;

  checkConnection(): Promise<void> {
    return Promise.resolve();
  }

  readSchools(): Promise<School[]> {
    this.requests++;
    return Promise.resolve(this.snapshot.schools.map(s => School.parse(s)));
  }

  /** Chunks of students with their guardians and relationships (self-contained). */
  // eslint-disable-next-line @typescript-eslint/require-await
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const snap = this.snapshot;
    const size = snap.chunkSize ?? Math.max(1, snap.students.length);
    for (let i = 0; i < snap.students.length || i === 0; i += size) {
      ctx.signal.throwIfAborted();
      this.requests++;
      const students = snap.students.slice(i, i + size).map(s => Student.parse(s));
      const ids = new Set(students.map(s => s.sourcedId));
      const relationships = snap.relationships
        .filter(r => ids.has(r.studentSourcedId))
        .map(r => Relationship.parse(r));
      const guardianIds = new Set(relationships.map(r => r.guardianSourcedId));
      // guardians without relationships ride with the first chunk (still delivered)
      const guardians = snap.guardians
        .filter(
          g =>
            guardianIds.has(g.sourcedId) ||
            (i === 0 && !snap.relationships.some(r => r.guardianSourcedId === g.sourcedId)),
        )
        .map(g => Guardian.parse(g));
      yield { students, guardians, relationships, relationshipsSupplied: true };
      if (snap.students.length === 0) return;
    }
  }

  stats(): PullStats {
    return {
      httpRequests: this.requests,
      httpByStatus: {},
      expectedStudents: this.snapshot.students.length,
    };
  }
}

/** A canonical student `id` with Unique ID `uniqueId` (school `sch-1`, grade 5). */
export function scriptedStudent(id: string, uniqueId: string, givenName: string): Student {
  return {
    sourcedId: id,
    uniqueId,
    givenName,
    familyName: 'Rivera',
    schoolSourcedIds: ['sch-1'],
    grade: '5',
    status: 'active',
  };
}

/** A canonical guardian `id` (role parent, email `<id>@example.org`). */
export function scriptedGuardian(id: string): Guardian {
  return {
    sourcedId: id,
    givenName: `Parent ${id}`,
    familyName: 'Rivera',
    email: `${id.toLowerCase()}@example.org`,
    role: 'parent',
    status: 'active',
  };
}
