/**
 * The two actions the board allows on a read-only node queue, for admins: pause means "stop
 * sending work there" (the node is drained: marked in the registry, its queue paused, what waits
 * there moved to other nodes; see `lib/master/node-drain.ts`), resume gives it work again. Bull
 * Board's own routes refuse both on a read-only queue, so these answer first; any other queue's
 * pause and resume go on to the board.
 */
import type { NextFunction, Request, Response } from 'express';

import { NodeNotFoundError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { drainNode, type NodeDrainDeps, resumeNode } from '../master/node-drain.js';
import type { DashboardLocals } from './dashboard-auth.js';
import { nodeIdOfQueue } from './queue-names.js';

/** The paths of Bull Board's pause and resume buttons of one queue. */
export const QUEUE_PAUSE_PATH = '/api/queues/:queueName/pause';
export const QUEUE_RESUME_PATH = '/api/queues/:queueName/resume';

export function nodePauseHandler(action: 'pause' | 'resume', deps: () => NodeDrainDeps, logger: Logger) {
  return async (
    req: Request<{ queueName: string }>,
    res: Response<unknown, DashboardLocals>,
    next: NextFunction,
  ): Promise<void> => {
    const nodeId = nodeIdOfQueue(req.params.queueName);
    if (nodeId === undefined) {
      next();
      return;
    }
    if (res.locals.role !== 'admin') {
      res
        .status(405)
        .json({ error: 'read-only', message: `Expected an admin user to ${action} a node, got a read-only one` });
      return;
    }
    try {
      if (action === 'pause') {
        const { moved } = await drainNode(deps(), nodeId);
        res.json({ nodeId, draining: true, moved });
      } else {
        await resumeNode(deps(), nodeId);
        res.json({ nodeId, draining: false });
      }
    } catch (error) {
      if (error instanceof NodeNotFoundError) {
        res.status(404).json({ error: 'no such node', message: error.message });
        return;
      }
      logger.warn({ nodeId, err: (error as Error).message }, `could not ${action} a node`);
      res.status(500).json({ error: `could not ${action} the node`, message: (error as Error).message });
    }
  };
}
