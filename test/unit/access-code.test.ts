/**
 * Parent Access Code format (invariant 8): alphabet, length, entropy, uniqueness over
 * 1,000,000 generated codes, input normalisation, and the pure section planner.
 */
import {
  ACCESS_CODE_ALPHABET,
  ACCESS_CODE_BITS,
  ACCESS_CODE_FORMAT,
  attemptKeyOf,
  formatAccessCode,
  generateAccessCode,
  generateAccessCodes,
  isCanonicalAccessCode,
  normalizeAccessCode,
} from '../../src/access-codes/code.js';
import { mergeSettings } from '../../src/access-codes/service.js';
import { countSectionPlan, planSections } from '../../src/models/sections/plan.js';

const LOOK_ALIKES = ['O', 'I', 'L', 'U'];

describe('access code alphabet and entropy', () => {
  it('has 32 distinct upper-case symbols without look-alike letters', () => {
    expect(new Set(ACCESS_CODE_ALPHABET).size).toBe(32);
    expect(ACCESS_CODE_ALPHABET).toBe(ACCESS_CODE_ALPHABET.toUpperCase());
    for (const ch of LOOK_ALIKES) expect(ACCESS_CODE_ALPHABET).not.toContain(ch);
    expect(ACCESS_CODE_ALPHABET).toMatch(/^[0-9A-Z]+$/);
  });

  it('carries at least 60 bits', () => {
    expect(ACCESS_CODE_BITS).toBeGreaterThanOrEqual(60);
  });

  it('draws symbols from the RNG without modulo bias (every byte value maps evenly)', () => {
    // Feed every byte value 0..255 exactly 12 times (one "code" per value).
    const counts = new Map<string, number>();
    const codes = generateAccessCodes(256, size => {
      const b = Buffer.alloc(size);
      for (let i = 0; i < size; i++) b[i] = Math.floor(i / 12);
      return b;
    });
    for (const c of codes) for (const ch of c) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(32);
    // 256 values × 12 symbols / 32 symbols = 96 each, exactly.
    for (const n of counts.values()) expect(n).toBe(96);
  });
});

describe('1,000,000 generated codes', () => {
  it('are all well-formed and none collides', () => {
    const N = 1_000_000;
    const started = Date.now();
    const codes = generateAccessCodes(N);
    const generatedMs = Date.now() - started;
    const seen = new Set<string>();
    let bad = 0;
    for (const c of codes) {
      if (!isCanonicalAccessCode(c) || !ACCESS_CODE_FORMAT.test(formatAccessCode(c))) bad++;
      seen.add(c);
    }
    expect(bad).toBe(0);
    expect(seen.size).toBe(N);
    // Symbol frequencies of 12 M symbols stay within 2 % of uniform (a biased mapping
    // — e.g. `byte % 31` — would be far outside).
    const freq = new Map<string, number>();
    for (const c of codes) for (const ch of c) freq.set(ch, (freq.get(ch) ?? 0) + 1);
    const expected = (N * 12) / 32;
    for (const ch of ACCESS_CODE_ALPHABET) {
      expect(Math.abs((freq.get(ch) ?? 0) - expected) / expected).toBeLessThan(0.02);
    }
    console.log(`generated ${N} codes in ${generatedMs} ms; unique: ${seen.size}`);
  });
});

describe('format and normalisation', () => {
  const code = generateAccessCode();
  const shown = formatAccessCode(code);

  it('shows XXXX-XXXX-XXXX in upper case', () => {
    expect(shown).toMatch(ACCESS_CODE_FORMAT);
    expect(shown.replace(/-/g, '')).toBe(code);
  });

  it('accepts any case, with or without dashes and spaces', () => {
    for (const typed of [
      shown,
      code,
      shown.toLowerCase(),
      ` ${shown.slice(0, 4)} ${shown.slice(5, 9)}  ${shown.slice(10)} `,
      `${code.slice(0, 6)}–${code.slice(6)}`, // en dash from a word processor
      code.split('').join(' '),
    ])
      expect(normalizeAccessCode(typed)).toBe(code);
  });

  it('reads O as 0 and I/L as 1 (Crockford)', () => {
    expect(normalizeAccessCode('O0O0-I1L1-iloo')).toBe('000011111100');
  });

  it('refuses wrong length, foreign symbols and non-strings', () => {
    for (const bad of [
      '',
      'ABCD-EFGH',
      `${code}A`,
      'ABCD-EFGH-JKU1',
      'ABCD-EFGH-JK*1',
      'x'.repeat(500),
    ])
      expect(normalizeAccessCode(bad)).toBeUndefined();
    expect(normalizeAccessCode(42)).toBeUndefined();
    expect(normalizeAccessCode(undefined)).toBeUndefined();
    expect(() => formatAccessCode('abc')).toThrow(RangeError);
  });

  it('keys attempts by the canonical code, so spellings of one code count together', () => {
    expect(attemptKeyOf(shown.toLowerCase())).toBe(attemptKeyOf(code));
    expect(attemptKeyOf('not a code!').length).toBeLessThanOrEqual(64);
  });
});

describe('settings precedence', () => {
  it('override field > district file > default', () => {
    const file = { enabled: true, defaultRole: 'Guardian', issueTo: 'all' as const };
    expect(mergeSettings(undefined, undefined)).toEqual({
      enabled: false,
      defaultRole: 'Parent',
      issueTo: 'unlinked',
    });
    expect(mergeSettings(file, undefined)).toEqual(file);
    expect(
      mergeSettings(file, { districtId: 'd', enabled: false, updatedAt: 't', updatedBy: 'me' }),
    ).toEqual({ ...file, enabled: false });
  });
});

describe('section planner', () => {
  const sec = (id: string, title = `T${id}`) => ({ sourcedId: id, title, schoolSourcedId: 's1' });
  const enr = (section: string, student: string) => ({
    sectionSourcedId: section,
    studentSourcedId: student,
  });
  const stored = (section: string, student: string, status: 'active' | 'inactive' = 'active') => ({
    districtId: 'd',
    sectionSourcedId: section,
    studentSourcedId: student,
    status,
  });

  it('adds, reactivates and removes only the chunk students’ enrollments', () => {
    const plan = planSections(
      'd',
      {
        studentSourcedIds: ['a', 'b'],
        sections: [sec('1'), sec('2', 'renamed')],
        enrollments: [enr('1', 'a'), enr('2', 'b'), enr('1', 'zz')],
      },
      {
        sections: [{ districtId: 'd', ...sec('2') }],
        enrollments: [stored('2', 'b', 'inactive'), stored('3', 'a'), stored('3', 'c')],
      },
    );
    expect(countSectionPlan(plan)).toEqual({
      section: { create: 1, update: 1 },
      enrollment: { add: 1, reactivate: 1, remove: 1 },
    });
    expect(plan.enrollments.find(e => e.action === 'remove')?.enrollment).toMatchObject({
      sectionSourcedId: '3',
      studentSourcedId: 'a',
      status: 'inactive',
    });
  });

  it('changes no enrollment when the chunk does not supply them (absent is not empty)', () => {
    const plan = planSections(
      'd',
      { studentSourcedIds: ['a'], sections: [sec('1')] },
      { sections: [{ districtId: 'd', ...sec('1') }], enrollments: [stored('1', 'a')] },
    );
    expect(countSectionPlan(plan)).toEqual({});
  });
});
