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
 * And three buttons of the `tasks` queue itself, for the same reason in bulk:
 *  - Clean of a state other than completed or failed (TaskInstances that have not ended).
 *  - Empty, while TaskInstances wait: it removes them without cancelling them (`drain`).
 *  - Obliterate: it deletes every TaskInstance, running ones included. Always refused.
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

/** The path of Bull Board's "Clean all" of one state of `tasks`. */
export const TASKS_CLEAN_PATH = `/api/queues/${TASKS_QUEUE}/clean/:queueStatus`;
/** The path of Bull Board's "Empty" of `tasks` (BullMQ's `drain`: waiting and prioritized jobs). */
export const TASKS_EMPTY_PATH = `/api/queues/${TASKS_QUEUE}/empty`;
/** The path of Bull Board's "Obliterate" of `tasks`. */
export const TASKS_OBLITERATE_PATH = `/api/queues/${TASKS_QUEUE}/obliterate`;

/** States whose TaskInstances have all ended: cleaning them strands nothing. */
const ENDED_STATES = new Set(['completed', 'failed']);

const CANCEL_INSTEAD =
  'A TaskInstance that has not ended is cancelled, not removed: removed, it keeps its package version held, ' +
  'its node job or steps run on, and its client waits for ever.';

export function refuseUnendedClean() {
  return (req: Request<{ queueStatus: string }>, res: Response<unknown, DashboardLocals>, next: NextFunction): void => {
    if (res.locals.role !== 'admin' || ENDED_STATES.has(req.params.queueStatus)) {
      next();
      return;
    }
    res.status(409).json({
      error: 'cancel them instead',
      message:
        `Clean of ${req.params.queueStatus} TaskInstances is refused: only completed and failed ones may be cleaned. ` +
        `${CANCEL_INSTEAD} Cancel each with tydra cancel ID or on its page (${TYDRA_PAGES_PATH}/instances/ID).`,
    });
  };
}

export function refuseEmptyWhileWaiting(tasksQueue: () => Queue) {
  return async (_req: Request, res: Response<unknown, DashboardLocals>, next: NextFunction): Promise<void> => {
    if (res.locals.role !== 'admin') {
      next();
      return;
    }
    const counts = await tasksQueue().getJobCounts('waiting', 'prioritized');
    const waiting = Object.values(counts).reduce((sum, count) => sum + count, 0);
    if (waiting === 0) {
      next();
      return;
    }
    res.status(409).json({
      error: 'cancel them instead',
      message:
        `${waiting} TaskInstance${waiting === 1 ? '' : 's'} wait${waiting === 1 ? 's' : ''} in tasks: Empty would remove ` +
        `them without cancelling them. ${CANCEL_INSTEAD} Cancel each with tydra cancel ID.`,
    });
  };
}

export function refuseObliterate() {
  return (_req: Request, res: Response<unknown, DashboardLocals>, next: NextFunction): void => {
    if (res.locals.role !== 'admin') {
      next();
      return;
    }
    res.status(405).json({
      error: 'not for TaskInstances',
      message:
        'Obliterate would delete every TaskInstance of tasks, running ones included, without cancelling any. ' +
        `${CANCEL_INSTEAD} Clean completed and failed ones instead; old ones also expire by themselves.`,
    });
  };
}
