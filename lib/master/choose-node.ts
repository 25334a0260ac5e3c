/**
 * Where the next TaskInstance goes: the live node with the lowest load per slot, and among those,
 * one that has the TaskInstance's version warm (a pre-started sandbox) or at least cached.
 */
export interface NodeLoad {
  id: string;
  concurrency: number;
  /** TaskInstances waiting in or running from the node's queue. */
  pending: number;
  /**
   * What the node has of the TaskInstance's package version, from its heartbeat: `warm` (a
   * pre-started sandbox), `cached` (extracted on disk), or nothing. @defaultValue nothing
   */
  affinity?: 'warm' | 'cached';
}

const AFFINITY_RANK = { warm: 2, cached: 1 } as const;

/**
 * Picks the node whose `pending / concurrency` is lowest; among equally loaded nodes, the ones
 * with the best affinity (warm over cached over none), so a busier node never wins for a warm
 * sandbox. Remaining ties are broken by rotating through them with `turn`, so equal nodes share
 * work instead of the first one taking it all.
 */
export function chooseNode(nodes: readonly NodeLoad[], turn: number): NodeLoad | undefined {
  let best: NodeLoad[] = [];
  let bestLoad = Number.POSITIVE_INFINITY;
  let bestRank = 0;
  for (const node of nodes) {
    const load = node.pending / Math.max(1, node.concurrency);
    const rank = node.affinity === undefined ? 0 : AFFINITY_RANK[node.affinity];
    if (load < bestLoad || (load === bestLoad && rank > bestRank)) {
      best = [node];
      bestLoad = load;
      bestRank = rank;
    } else if (load === bestLoad && rank === bestRank) {
      best.push(node);
    }
  }
  const sorted = best.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return sorted[turn % Math.max(1, sorted.length)];
}
