/** Webhook delivery of the change feed (placeholder: being written). */
import type { AppContext } from '../app.js';

/** Ask for delivery of the district's new change-log entries to its webhook (if any). */
export async function kickWebhooks(_ctx: AppContext, _districtId: string): Promise<void> {
  // placeholder
}
