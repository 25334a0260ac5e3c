/**
 * The phases of a parallel task, each in its own sandbox with a task's walls and limits:
 * `runSplit` (units out, at the node's pace), `startWorker` (a long-lived work sandbox for one
 * TaskInstance, one unit at a time) and `runReduce` (results in, in split order). The one public
 * module of this folder.
 */
export { type PhaseEntry, type PhaseOptions, type UnitFailure } from './options.js';
export { type ReduceOptions, runReduce } from './reduce.js';
export { runSplit, SPLIT_WINDOW, type SplitOptions } from './split.js';
export { startWorker, type WorkSandbox, type WorkUnit } from './worker.js';
