/** Errors of admin imports. None is retryable: they describe the file or the request. */
import { GuardianSyncError } from '../errors.js';

/**
 * The file as a whole cannot be used (unreadable, legacy .xls, missing columns, unclosed
 * quote…). The message names the file and what the admin should do. Nothing was stored.
 */
export class ImportFileError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    readonly fileName: string,
    detail: string,
  ) {
    super(`${fileName}: ${detail}`);
  }
}

/** Why a preview cannot be confirmed. */
export type PreviewProblem =
  'not-found' | 'expired' | 'superseded' | 'in-progress' | 'input-mismatch';

/**
 * A confirm named a preview that does not exist (in that district), has expired, was
 * replaced by a newer preview, is being applied by another request right now, or was made
 * from another file or other options than the confirm names.
 */
export class ImportPreviewError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    readonly previewId: string,
    readonly problem: PreviewProblem,
    detail: string,
  ) {
    super(`import preview ${previewId}: ${detail}`);
  }
}
