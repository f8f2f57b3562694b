import type { RosterStore } from '../../src/models/types.js';

/**
 * A store contract suite: `(name, open, close)` (e.g. `runChangeLogContract`), run on each
 * adapter by `onSqliteStores` (./sqlite-stores.ts) and `onMongoStore` (./mongo-server.ts).
 */
export type StoreContract = (
  name: string,
  open: () => Promise<RosterStore>,
  close: (store: RosterStore) => Promise<void>,
) => void;
