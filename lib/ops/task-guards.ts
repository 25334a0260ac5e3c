/**
 * Two buttons of the board on a TaskInstance in `tasks` that would strand it, answered before the
 * board with a message that says what to do instead (admins only: a read-only user's board
 * refuses both itself):
 *  - Delete of a TaskInstance that has not ended. BullMQ cannot remove one whose node job runs
 *    (the toast said "locked by another worker"), and removing one that waits would skip what a
 *    cancel does (its package reference, its node job, a sequence's steps, a parallel one's
 *    workunits). Such a TaskInstance is cancelled, not deleted. Ended ones go on to the board.
 *  - "Remove unprocessed children": a TaskInstance's children are its node job or a sequence's
 *    steps; without them it waits in waiting-children for ever. Always refused.
 */
import type { Queue } from 'bullmq';
import type { NextFunction, Request, Response } from 'express';

import { TASKS_QUEUE } from '../../queues/tasks.js';
import type { DashboardLocals } from './dashboard-auth.js';
import { TYDRA_PAGES_PATH } from './tydra-pages-path.js';

/** The path of Bull Board's Delete of one job of `tasks`. */
export const TASK_DELETE_PATH = `/api/queues/${TASKS_QUEUE}/:jobId/clean`;

/** The path of Bull Board's "remove unprocessed children" of one job of `tasks`. */
export const TASK_CHILDREN_REMOVAL_PATH = `/api/queues/${TASKS_QUEUE}/:jobId/remove-unprocessed-children`;

/** BullMQ states in which a TaskInstance has ended (or is gone: the board answers that). */
const DELETABLE = new Set(['completed', 'failed', 'unknown']);

export function refuseUnendedDelete(tasksQueue: () => Queue) {
  return async (
    req: Request<{ jobId: string }>,
    res: Response<unknown, DashboardLocals>,
    next: NextFunction,
  ): Promise<void> => {
    // A read-only user's Delete is refused by the board itself (read-only mode).
    if (res.locals.role !== 'admin') {
      next();
      return;
    }
    const id = req.params.jobId;
    const state = await tasksQueue().getJobState(id);
    if (DELETABLE.has(state)) {
      next();
      return;
    }
    res.status(409).json({
      error: 'cancel it instead',
      message:
        `TaskInstance ${id} has not ended (BullMQ state ${state}): it is cancelled, not deleted. ` +
        `Cancel it on ${TYDRA_PAGES_PATH}/instances/${encodeURIComponent(id)} (the link on its card) or with tydra cancel ${id}.`,
    });
  };
}

export function refuseChildrenRemoval() {
  return (req: Request<{ jobId: string }>, res: Response<unknown, DashboardLocals>, next: NextFunction): void => {
    if (res.locals.role !== 'admin') {
      next();
      return;
    }
    const id = req.params.jobId;
    res.status(405).json({
      error: 'cancel it instead',
      message:
        `The children of TaskInstance ${id} are its node job or its steps: removed, they would leave it waiting for ever. ` +
        `Cancel it on ${TYDRA_PAGES_PATH}/instances/${encodeURIComponent(id)} or with tydra cancel ${id}.`,
    });
  };
}
