/**
 * Per-district notification settings (`notifications` in a district file): activation emails
 * for new parent accounts. See docs/notifications.md for the operator's view.
 *
 * Templates use `{{placeholder}}` markers; an unknown placeholder is a configuration error
 * (a typo must not send "Dear {{parntName}}" to thousands of parents).
 */
import { z } from 'zod';

/** Placeholders the activation templates may use. */
export const ACTIVATION_PLACEHOLDERS = [
  /** "Given Family" of the parent account. */
  'parentName',
  'parentGivenName',
  /** "Ana, Ben and Carla Diaz"-style list of the linked children ("your child" when none). */
  'childrenNames',
  /** The activation link (portal base URL + token). */
  'link',
  /** Expiry of the link, e.g. "June 14, 2025" (UTC). */
  'expiresAt',
  /** Days the link stays valid. */
  'expiresInDays',
  /** The district's display name. */
  'districtName',
] as const;
export type ActivationPlaceholder = (typeof ACTIVATION_PLACEHOLDERS)[number];

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** Placeholder names used in `template` that are not in `ACTIVATION_PLACEHOLDERS`. */
export function unknownPlaceholders(template: string): string[] {
  const known = new Set<string>(ACTIVATION_PLACEHOLDERS);
  return [...template.matchAll(PLACEHOLDER)].map(m => m[1] ?? '').filter(n => !known.has(n));
}

const Template = z
  .string()
  .min(1)
  .superRefine((s, ctx) => {
    const bad = unknownPlaceholders(s);
    if (bad.length)
      ctx.addIssue({
        code: 'custom',
        message: `unknown placeholder ${bad.map(b => `{{${b}}}`).join(', ')} (known: ${ACTIVATION_PLACEHOLDERS.join(', ')})`,
      });
  });

/** Subject, plain-text and HTML body of the activation email; each falls back to the default. */
export const ActivationTemplates = z.strictObject({
  subject: Template.refine(s => !/[\r\n]/.test(s), 'a subject is one line').optional(),
  text: Template.optional(),
  html: Template.optional(),
});
export type ActivationTemplates = z.infer<typeof ActivationTemplates>;

/** `portalBaseUrl` with `{token}` replaced, or with `?token=` appended. */
export function activationLink(portalBaseUrl: string, token: string): string {
  const t = encodeURIComponent(token);
  if (portalBaseUrl.includes('{token}')) return portalBaseUrl.replaceAll('{token}', t);
  const u = new URL(portalBaseUrl);
  u.searchParams.set('token', token);
  return u.toString();
}

export const NotificationSettings = z.strictObject({
  /** Send activation emails to parent accounts that a sync created. Imports decide per file. */
  activationEmails: z.boolean(),
  /**
   * Where parents set their password, e.g. `https://portal.example.org/activate?token={token}`
   * or `https://portal.example.org/activate` (then `?token=…` is appended).
   */
  portalBaseUrl: z
    .string()
    .trim()
    .refine(s => {
      try {
        const u = new URL(s.replaceAll('{token}', 'x'));
        return u.protocol === 'https:' || u.protocol === 'http:';
      } catch {
        return false;
      }
    }, 'must be an http(s) URL, optionally with a {token} placeholder'),
  /** Sender, e.g. `"Springfield USD" <no-reply@springfield.k12.example.us>`. */
  from: z
    .string()
    .trim()
    .regex(/^[^\r\n]*@[^\r\n]*$/, 'must be an email address, optionally with a display name'),
  templates: z.strictObject({ activation: ActivationTemplates.optional() }).optional(),
  /** Most emails this district may send per clock hour (UTC); more wait for the next hour. */
  ratePerHour: z.number().int().min(1).optional(),
  /** Most emails per UTC day; more wait for the next day. */
  ratePerDay: z.number().int().min(1).optional(),
  /** Days an activation link stays valid. */
  tokenTtlDays: z.number().int().min(1).max(90).default(14),
});
export type NotificationSettings = z.infer<typeof NotificationSettings>;
