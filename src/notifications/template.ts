/**
 * Activation email content: default templates, `{{placeholder}}` rendering, HTML escaping,
 * and the activation token (random, stored only as its sha256). Pure functions, no I/O.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  ACTIVATION_PLACEHOLDERS,
  type ActivationPlaceholder,
  type ActivationTemplates,
} from '../config/notifications.js';

/** The templates used for every part a district does not set. */
export const DEFAULT_ACTIVATION_TEMPLATES: Required<ActivationTemplates> = {
  subject: 'Activate your {{districtName}} parent account',
  text: [
    'Hello {{parentName}},',
    '',
    '{{districtName}} has created a parent account for you, linked to {{childrenNames}}.',
    'With it you can follow activity, courses, grades and attendance.',
    '',
    'To activate your account and choose a password, open this link:',
    '{{link}}',
    '',
    'The link works once and expires on {{expiresAt}} (in {{expiresInDays}} days).',
    'If it has expired, ask your school to send a new one.',
    '',
    'If you did not expect this email, you can ignore it.',
    '',
  ].join('\n'),
  html: [
    '<!doctype html>',
    '<html><body style="font-family: sans-serif; line-height: 1.5">',
    '<p>Hello {{parentName}},</p>',
    '<p>{{districtName}} has created a parent account for you, linked to {{childrenNames}}.',
    'With it you can follow activity, courses, grades and attendance.</p>',
    '<p><a href="{{link}}">Activate your account and choose a password</a></p>',
    '<p>The link works once and expires on {{expiresAt}} (in {{expiresInDays}} days).',
    'If it has expired, ask your school to send a new one.</p>',
    '<p>If you did not expect this email, you can ignore it.</p>',
    '</body></html>',
    '',
  ].join('\n'),
};

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escape `& < > " '` so a value is safe in HTML text and in quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, c => HTML_ESCAPES[c] ?? c);
}

/**
 * Replace every `{{name}}` in `template` with `values[name]` (HTML-escaped when `html`).
 * Line breaks in values become spaces, so a value cannot add a line to a subject.
 * Throws on a placeholder that is not in `ACTIVATION_PLACEHOLDERS` (district files are
 * validated at load, so this only catches code defaults).
 */
export function renderTemplate(
  template: string,
  values: Record<ActivationPlaceholder, string>,
  opts: { html: boolean },
): string {
  const known = new Set<string>(ACTIVATION_PLACEHOLDERS);
  return template.replace(/\{\{\s*([^{}]*?)\s*\}\}/g, (_m, name: string) => {
    if (!known.has(name)) throw new Error(`unknown template placeholder {{${name}}}`);
    const v = values[name as ActivationPlaceholder].replace(/[\r\n]+/g, ' ');
    return opts.html ? escapeHtml(v) : v;
  });
}

/** "Ana Diaz", "Ana Diaz and Ben Diaz", "Ana Diaz, Ben Diaz and Carla Lee"; "your child" for none. */
export function childrenNames(children: { givenName: string; familyName: string }[]): string {
  const names = children.map(c => `${c.givenName} ${c.familyName}`.trim()).filter(Boolean);
  if (names.length === 0) return 'your child';
  if (names.length === 1) return names[0] ?? '';
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1] ?? ''}`;
}

const EXPIRY_FORMAT = new Intl.DateTimeFormat('en-US', { dateStyle: 'long', timeZone: 'UTC' });

/** "June 14, 2025" (UTC). */
export function formatExpiry(at: Date): string {
  return EXPIRY_FORMAT.format(at);
}

export interface ActivationEmailInput {
  districtName: string;
  parent: { givenName: string; familyName: string };
  children: { givenName: string; familyName: string }[];
  link: string;
  expiresAt: Date;
  ttlDays: number;
  templates?: ActivationTemplates | undefined;
}

/** Subject, text and HTML of one activation email; district templates override defaults. */
export function renderActivationEmail(input: ActivationEmailInput): {
  subject: string;
  text: string;
  html: string;
} {
  const values: Record<ActivationPlaceholder, string> = {
    parentName: `${input.parent.givenName} ${input.parent.familyName}`.trim() || 'parent',
    parentGivenName: input.parent.givenName || 'parent',
    childrenNames: childrenNames(input.children),
    link: input.link,
    expiresAt: formatExpiry(input.expiresAt),
    expiresInDays: String(input.ttlDays),
    districtName: input.districtName,
  };
  const t = { ...DEFAULT_ACTIVATION_TEMPLATES, ...stripUndefined(input.templates ?? {}) };
  return {
    subject: renderTemplate(t.subject, values, { html: false }),
    text: renderTemplate(t.text, values, { html: false }),
    html: renderTemplate(t.html, values, { html: true }),
  };
}

function stripUndefined(t: ActivationTemplates): Partial<Required<ActivationTemplates>> {
  return Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined));
}

/** Bytes of randomness in an activation token (256 bits). */
const TOKEN_BYTES = 32;
/** base64url of 32 bytes: 43 characters. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** sha256 (hex) of a token: what the store keeps. */
export function hashActivationToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new token (crypto RNG, base64url) and its hash. */
export function newActivationToken(): { token: string; hash: string } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  return { token, hash: hashActivationToken(token) };
}
