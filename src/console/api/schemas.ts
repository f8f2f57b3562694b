/**
 * zod schemas of the API answers the console reads. The run, district, held, reject and
 * session answers are the API's own (src/shared/api-schemas.ts, also used by src/api to
 * shape what it sends), so the two cannot drift; parsing drops keys they do not list, so a
 * field a newer API adds never breaks the console. The list wrappers below are the API's
 * (`{items}`, `{started, run}`, `{run}`) over those.
 */
import { z } from 'zod';
import {
  ConsoleSession,
  DistrictDetail,
  DistrictSummary,
  HeldItem,
  Principal,
  RejectItem,
  RunDetail,
  RunSummary,
} from '../../shared/api-schemas';

export { DistrictDetail, DistrictSummary, HeldItem, Principal, RejectItem, RunDetail, RunSummary };
export const Session = ConsoleSession;
export type Session = z.infer<typeof Session>;

export const DistrictList = z.object({ items: z.array(DistrictSummary) });
export const RunList = z.object({ items: z.array(RunSummary) });
export const TriggerResult = z.object({ started: z.boolean(), run: RunSummary });
export const HeldDecision = z.object({ run: RunDetail });

/** A page of a server-paged list: `{total, offset, limit, items}`. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.looseObject({
    total: z.number(),
    offset: z.number(),
    limit: z.number(),
    items: z.array(item),
  });
}
