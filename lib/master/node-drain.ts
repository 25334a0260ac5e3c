/**
 * Draining a node: "stop sending work there" (`tydra node drain ID`, the board's pause of
 * `node.<id>`). The node is marked draining in the registry, so no master chooses it; its queue
 * is paused in BullMQ, so it starts nothing more of what waits there (and the board shows it
 * paused); and what waits is taken back for a new dispatch to another node, now and by every
 * master's sweep while the mark holds (a dispatch that chose the node just before the mark lands
 * there after this step). What the node runs, it finishes. `resume` undoes the mark and the pause.
 */
import type { NodeRegistry } from '../cluster/node-registry.js';
import { NodeNotFoundError } from '../core/errors.js';
import { type TakeBackDeps, takeBackWaiting } from './node-sweeper.js';

export interface NodeDrainDeps extends TakeBackDeps {
  registry: NodeRegistry;
}

/** Marks the node draining, pauses its queue and moves what waits there; returns how many moved. */
export async function drainNode(deps: NodeDrainDeps, nodeId: string): Promise<{ moved: number }> {
  if (!(await deps.registry.setDraining(nodeId, true))) {
    throw new NodeNotFoundError(nodeId);
  }
  await deps.nodeQueue(nodeId).pause();
  const moved = await takeBackWaiting(deps, nodeId);
  deps.logger.info({ nodeId, moved }, 'node draining: it gets no new work');
  return { moved };
}

/** Gives the node work again: clears the mark and resumes its queue. */
export async function resumeNode(deps: NodeDrainDeps, nodeId: string): Promise<void> {
  if (!(await deps.registry.setDraining(nodeId, false))) {
    throw new NodeNotFoundError(nodeId);
  }
  await deps.nodeQueue(nodeId).resume();
  deps.logger.info({ nodeId }, 'node resumed: it gets work again');
}
