/**
 * Change-log entries of Parent Access Codes (design invariant 13), shared by both adapters.
 * An entry names a code by `codeRef(code)` and never holds its value: anyone who can read the
 * log or the change feed could otherwise register as the student's guardian.
 */
import { codeRef, type NewChange } from '../changes/types.js';

/** A code issued to a student (`code` canonical). */
export function codeIssueChange(code: string, studentSourcedId: string): NewChange {
  return {
    entity: 'code',
    entityId: codeRef(code),
    action: 'create',
    studentSourcedId,
    after: { status: 'active' },
  };
}

/** A student's active code revoked by a reset (`code` canonical). */
export function codeRevokeChange(code: string, studentSourcedId: string): NewChange {
  return {
    entity: 'code',
    entityId: codeRef(code),
    action: 'deactivate',
    studentSourcedId,
    before: { status: 'active' },
    after: { status: 'revoked' },
  };
}

/**
 * A student's code that follows the student to a new sourcedId (the SIS re-keyed the student,
 * matched by Unique ID): the code keeps working, only the student it is keyed by changes.
 */
export function codeMoveChange(code: string, from: string, to: string): NewChange {
  return {
    entity: 'code',
    entityId: codeRef(code),
    action: 'update',
    studentSourcedId: to,
    before: { studentSourcedId: from },
    after: { studentSourcedId: to },
  };
}
