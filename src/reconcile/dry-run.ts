/**
 * Dry-run parent counts across chunks (design invariant 12: preview equals apply). A dry run
 * plans every chunk against the store as it is, so a guardian shared by siblings in two
 * chunks is planned as "create" by both, where the real run creates the account in the first
 * chunk and finds it in the second. Each chunk records what it planned for parent accounts
 * (`DryRunParents`); `dryRunParentCounts` merges them as the real run would apply them. Pure.
 */
import type { ChunkPlan, RunCounts } from '../models/types.js';

/** What one chunk of a dry run planned for parent accounts. */
export interface DryRunParents {
  /** Planned creates: account id and its identity keys (sources, Unique ID, email). */
  creates: { id: string; keys: string[] }[];
  /** Planned changes to existing accounts: `action`, account id and sources added. */
  updates: { id: string; action: string; addSources: string[] }[];
}

/** The parent-account part of one chunk's plan, for `dryRunParentCounts`. */
export function dryRunParentsOf(plan: ChunkPlan): DryRunParents {
  return {
    creates: plan.parentCreates.map(p => ({
      id: p.id,
      keys: [
        ...p.sources.map(s => `s:${s.connector}:${s.sourcedId}`),
        ...(p.uniqueId ? [`u:${p.uniqueId}`] : []),
        ...(p.emailNormalized ? [`e:${p.emailNormalized}`] : []),
      ],
    })),
    updates: plan.parentUpdates.map(u => ({
      id: u.update.id,
      action: u.action,
      addSources: u.update.addSources.map(s => `${s.connector}:${s.sourcedId}`).sort(),
    })),
  };
}

/**
 * Parent counts (`{create, match, update, reactivate}`) of the chunks' plans taken together:
 * - creates that share an identity key (a source, Unique ID or email; the same guardian in
 *   sibling chunks) are one person: one `create`; each further distinct account id among
 *   them is a `match` (the real run's later chunk finds the account and adds its source);
 *   the same account id planned again is nothing;
 * - the same change to an existing account (same id, action and sources added) planned by
 *   several chunks counts once (the later chunks of the real run find it done).
 */
export function dryRunParentCounts(chunks: readonly DryRunParents[]): RunCounts[string] {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.get(root) !== undefined && parent.get(root) !== root) root = parent.get(root)!;
    parent.set(k, root);
    return root;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra, rb);
  };
  const ids = new Set<string>();
  for (const c of chunks)
    for (const p of c.creates) {
      const node = `id:${p.id}`;
      ids.add(p.id);
      find(node);
      for (const k of p.keys) union(node, k);
    }
  const groups = new Map<string, number>();
  for (const id of ids) {
    const root = find(`id:${id}`);
    groups.set(root, (groups.get(root) ?? 0) + 1);
  }
  const out: Record<string, number> = {};
  const inc = (action: string, n = 1) => {
    if (n > 0) out[action] = (out[action] ?? 0) + n;
  };
  for (const n of groups.values()) {
    inc('create');
    inc('match', n - 1);
  }
  const seen = new Set<string>();
  for (const c of chunks)
    for (const u of c.updates) {
      const key = `${u.id}\u0000${u.action}\u0000${u.addSources.join(',')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inc(u.action);
    }
  return out;
}
