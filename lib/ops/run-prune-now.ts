/**
 * The one action the board allows on the read-only `maintenance` queue: run the package prune
 * now, from the masters' scheduler template (its schedule and pending run stay as they are).
 * Bull Board's own route refuses it on a read-only queue, so this route answers first, for admins.
 */
import type { Queue } from 'bullmq';
import type { Request, Response } from 'express';

import { MAINTENANCE_QUEUE, PRUNE_SCHEDULER } from '../../queues/maintenance.js';

/** The path Bull Board's "run now" button calls for a scheduler of `maintenance`. */
export const RUN_PRUNE_NOW_PATH = `/api/queues/${MAINTENANCE_QUEUE}/job-schedulers/:schedulerId/run`;

export function runPruneNow(maintenance: () => Queue | undefined) {
  return async (req: Request<{ schedulerId: string }>, res: Response): Promise<void> => {
    const { schedulerId } = req.params;
    const queue = maintenance();
    if (schedulerId !== PRUNE_SCHEDULER) {
      res.status(405).json({
        error: 'maintenance is read-only',
        message: `Expected the prune scheduler \`${PRUNE_SCHEDULER}\`, got \`${schedulerId}\``,
      });
      return;
    }
    const scheduler = await queue?.getJobScheduler(schedulerId);
    if (queue === undefined || !scheduler) {
      res
        .status(404)
        .json({ error: 'no prune scheduler', message: 'Expected a master to have set up the prune, found none' });
      return;
    }
    const job = await queue.add(scheduler.name, scheduler.template?.data, scheduler.template?.opts);
    res.json({ job: { id: job.id, name: job.name } });
  };
}
