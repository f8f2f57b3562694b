/**
 * Parent Access Codes: generation, display format and input normalisation (design.md
 * invariant 8). Pure, no I/O apart from the cryptographic RNG.
 *
 * Format: `XXXX-XXXX-XXXX`, 12 symbols from Crockford's Base32 alphabet
 * (https://www.crockford.com/base32.html): the digits and the upper-case letters without
 * I, L, O and U. No two symbols of the alphabet look alike (there is a 0 and a 1 but no O,
 * I or L), and on input the look-alikes are read as what they resemble (O → 0, I/L → 1),
 * exactly as Crockford's decoding rules say. 32 symbols = 5 bits each, so a code carries
 * 12 × 5 = 60 bits, drawn from `crypto.randomBytes` without modulo bias (32 divides 256).
 *
 * A 31-symbol alphabet (dropping 0 and 1 as well) would give only 12 × log2(31) ≈ 59.4
 * bits in the fixed 12-symbol format, below the 60 bits the invariant asks for.
 *
 * Codes are stored and compared in their canonical form (12 symbols, no dashes); they are
 * shown and exported formatted.
 */
import { randomBytes } from 'node:crypto';

/** Crockford Base32 symbols, in value order. */
export const ACCESS_CODE_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** Symbols per code (canonical form). */
export const ACCESS_CODE_LENGTH = 12;
/** Entropy of one code in bits: 12 × log2(32). */
export const ACCESS_CODE_BITS = ACCESS_CODE_LENGTH * Math.log2(ACCESS_CODE_ALPHABET.length);
/** The display format, as a regular expression. */
export const ACCESS_CODE_FORMAT =
  /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;
/** Longest raw input looked at; anything longer is malformed (keeps rate-limit keys small). */
export const MAX_ACCESS_CODE_INPUT = 64;

const SYMBOLS = new Set(ACCESS_CODE_ALPHABET);
/** Crockford decoding of look-alikes. */
const LOOK_ALIKES: Record<string, string> = { O: '0', I: '1', L: '1' };

/**
 * `n` new codes in canonical form (12 symbols each), from one `randomBytes(12 n)` call: the
 * low 5 bits of each byte pick a symbol, which is uniform because 256 is a multiple of 32.
 * Uniqueness is not checked here: the store's unique index does that (and callers retry).
 */
export function generateAccessCodes(
  n: number,
  random: (size: number) => Buffer = randomBytes,
): string[] {
  if (!Number.isInteger(n) || n < 0)
    throw new RangeError(`n must be a non-negative integer, got ${n}`);
  const bytes = random(ACCESS_CODE_LENGTH * n);
  const out: string[] = new Array<string>(n);
  for (let i = 0; i < n; i++) {
    let code = '';
    for (let k = 0; k < ACCESS_CODE_LENGTH; k++) {
      code += ACCESS_CODE_ALPHABET[(bytes[i * ACCESS_CODE_LENGTH + k] ?? 0) & 31];
    }
    out[i] = code;
  }
  return out;
}

/** One new code in canonical form (see `generateAccessCodes`). */
export function generateAccessCode(): string {
  return generateAccessCodes(1)[0] ?? '';
}

/** `ABCD2345WXYZ` → `ABCD-2345-WXYZ`. Throws `RangeError` for a non-canonical code. */
export function formatAccessCode(canonical: string): string {
  if (!isCanonicalAccessCode(canonical)) throw new RangeError('not a canonical access code');
  return `${canonical.slice(0, 4)}-${canonical.slice(4, 8)}-${canonical.slice(8)}`;
}

/** True for 12 symbols of the alphabet, nothing else. */
export function isCanonicalAccessCode(s: string): boolean {
  if (s.length !== ACCESS_CODE_LENGTH) return false;
  for (const ch of s) if (!SYMBOLS.has(ch)) return false;
  return true;
}

/**
 * What a person typed → the canonical code, or undefined when it cannot be one.
 * Case-insensitive; spaces, tabs and dashes (also the Unicode dashes a word processor puts
 * in) are ignored anywhere; O is read as 0 and I/L as 1 (Crockford). Never throws.
 */
export function normalizeAccessCode(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length > MAX_ACCESS_CODE_INPUT) return undefined;
  let out = '';
  for (const raw of input.toUpperCase()) {
    if (/[\s\-\u2010-\u2015\u2212]/u.test(raw)) continue;
    const ch = LOOK_ALIKES[raw] ?? raw;
    if (!SYMBOLS.has(ch)) return undefined;
    out += ch;
    if (out.length > ACCESS_CODE_LENGTH) return undefined;
  }
  return out.length === ACCESS_CODE_LENGTH ? out : undefined;
}

/**
 * A stable key for rate-limiting attempts "per code": the canonical code when the input is
 * well-formed, else the input upper-cased without separators (so typos of one bad string
 * still count together). Never longer than `MAX_ACCESS_CODE_INPUT`.
 */
export function attemptKeyOf(input: unknown): string {
  const canonical = normalizeAccessCode(input);
  if (canonical) return canonical;
  if (typeof input !== 'string') return '(not a string)';
  return input.slice(0, MAX_ACCESS_CODE_INPUT).toUpperCase().replace(/[\s-]/g, '');
}
