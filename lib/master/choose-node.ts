/** Where the next TaskInstance goes: the live node with the lowest load per slot. */
export interface NodeLoad {
  id: string;
  concurrency: number;
  /** TaskInstances waiting in or running from the node's queue. */
  pending: number;
}

/**
 * Picks the node whose `pending / concurrency` is lowest. Ties are broken by rotating through
 * the tied nodes with `turn`, so equal nodes share work instead of the first one taking it all.
 */
export function chooseNode(nodes: readonly NodeLoad[], turn: number): NodeLoad | undefined {
  let best: NodeLoad[] = [];
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const node of nodes) {
    const load = node.pending / Math.max(1, node.concurrency);
    if (load < bestLoad) {
      best = [node];
      bestLoad = load;
    } else if (load === bestLoad) {
      best.push(node);
    }
  }
  const sorted = best.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return sorted[turn % Math.max(1, sorted.length)];
}
