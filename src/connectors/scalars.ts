/**
 * Scalar parsing shared by the connectors' zod payload schemas: ids, integers and booleans
 * as SIS APIs send them (sis-reference §2.6, §3, §4: numbers as strings, booleans as
 * `"TRUE"`/`"Y"`/`1`, ids as numbers or strings).
 *
 * Each function is the body of one zod transform over the raw JSON value, e.g.
 * `z.unknown().transform(toId)`, rather than a union of transformed options: a roster pull
 * parses millions of these fields, and a single function per field costs about a third of
 * the union/pipe chain in zod 4 (docs/performance.md). Each reports a custom issue and
 * returns `z.NEVER` on a value it does not accept. No I/O.
 */
import { z } from 'zod';

/** The refinement context zod passes to a transform. */
export type ScalarCtx = z.core.$RefinementCtx<unknown>;

/** Report `message` as a validation issue of the current field. */
export function fail(ctx: ScalarCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** An id: an integer, or a string trimmed and not empty; output as a string. */
export function toId(v: unknown, ctx: ScalarCtx): string {
  if (typeof v === 'string') {
    const t = v.trim();
    return t !== '' ? t : fail(ctx, 'must not be empty');
  }
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  return fail(ctx, 'expected a string or an integer');
}

const INTEGER = /^-?\d+$/;

/** An integer, or a string holding one (trimmed); output as a number. */
export function toInt(v: unknown, ctx: ScalarCtx): number {
  if (typeof v === 'number') return Number.isInteger(v) ? v : fail(ctx, 'must be an integer');
  if (typeof v === 'string') {
    const t = v.trim();
    return INTEGER.test(t) ? Number.parseInt(t, 10) : fail(ctx, 'must be an integer');
  }
  return fail(ctx, 'expected an integer or a string holding one');
}

const TRUE_STRINGS = new Set(['true', '1', 'y', 'yes', 't']);
const FALSE_STRINGS = new Set(['false', '0', 'n', 'no', 'f']);

/**
 * `true`/`false`, `1`/`0`, or a string `true`/`1`/`y`/`yes`/`t` (false: `false`/`0`/`n`/`no`/
 * `f`) in any case. Anything else is an issue, never silently false.
 */
export function toBool(v: unknown, ctx: ScalarCtx): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 1) return true;
  if (v === 0) return false;
  if (typeof v === 'string') {
    const k = v.trim().toLowerCase();
    if (TRUE_STRINGS.has(k)) return true;
    if (FALSE_STRINGS.has(k)) return false;
  }
  return fail(ctx, 'not a recognised boolean value');
}

/**
 * A zod schema for `parse` where `null` or a missing key means unset (output undefined),
 * and the key is optional in the inferred type.
 */
export function unsetOr<T>(parse: (v: unknown, ctx: ScalarCtx) => T) {
  return z
    .unknown()
    .transform((v, ctx) => (v === null || v === undefined ? undefined : parse(v, ctx)))
    .optional();
}
