/**
 * Errors of the access-code service, each with the HTTP status an API should answer and a
 * body that is safe to show. Redemption failures about the code itself are ONE error with
 * ONE fixed body, whatever the cause (unknown, revoked, inactive student, district unknown
 * or disabled): the answer never reveals whether a code, student or district exists
 * (invariant 8).
 */

/** Base class: `status` (HTTP) and `body` (what a client may see). */
export abstract class AccessCodeServiceError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
    Object.setPrototypeOf(this, new.target.prototype);
  }
  /** The response body an API sends for this error. */
  get body(): { error: string; message: string } {
    return { error: this.code, message: this.message };
  }
}

/** The one answer for any code that does not redeem. Always the same message. */
export const INVALID_CODE_MESSAGE =
  'This access code is not valid. Check the code and try again, or ask the school for a new one.';

export class InvalidAccessCodeError extends AccessCodeServiceError {
  readonly status = 400;
  readonly code = 'invalid_access_code';
  constructor() {
    super(INVALID_CODE_MESSAGE);
  }
}

/** The one answer once a client or a code has too many failed attempts. */
export const TOO_MANY_ATTEMPTS_MESSAGE =
  'Too many attempts. Please wait a few minutes and try again.';

export class TooManyAttemptsError extends AccessCodeServiceError {
  readonly status = 429;
  readonly code = 'too_many_attempts';
  constructor(
    /** Seconds until the window ends (for a `Retry-After` header). */
    readonly retryAfterSeconds: number,
  ) {
    super(TOO_MANY_ATTEMPTS_MESSAGE);
  }
}

/** Registering with an email/username that already has an account: sign in and Add Child. */
export class AccountExistsError extends AccessCodeServiceError {
  readonly status = 409;
  readonly code = 'account_exists';
  constructor() {
    super(
      'An account with this email or username already exists. Sign in and use "Add Child" with the code.',
    );
  }
}

/** An admin operation on a district whose access codes are disabled. */
export class AccessCodesDisabledError extends AccessCodeServiceError {
  readonly status = 409;
  readonly code = 'access_codes_disabled';
  constructor(districtId: string) {
    super(
      `access codes are disabled for district ${districtId} (codes settings ${districtId} --enable)`,
    );
  }
}

/** An admin operation named something that does not exist (section, parent account). */
export class NotFoundError extends AccessCodeServiceError {
  readonly status = 404;
  readonly code = 'not_found';
}

/** Input that failed its zod schema (admin operations and redemption forms). */
export class InvalidInputError extends AccessCodeServiceError {
  readonly status = 400;
  readonly code = 'invalid_input';
  constructor(
    message: string,
    readonly problems: string[] = [],
  ) {
    super(problems.length ? `${message}: ${problems.join('; ')}` : message);
  }
}
