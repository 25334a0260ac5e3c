/** The options of a parallel task's phases, and what each phase's entry starts. */
import type { UnitFailure } from '../../protocol.js';
import type { TaskEntry } from '../launch.js';
import type { RunTaskOptions } from '../run-task.js';

/**
 * What runs a phase: the package module (exporting `split`, `work` and `reduce`) under the
 * runner in that mode, or the phase's own command.
 */
export type PhaseEntry =
  | { module: string; mode: 'split' | 'work' | 'reduce' }
  | { command: readonly string[]; unrecoverableExitCodes?: readonly number[] };

/** A phase runs with everything a task runs with (limits, cgroup, bwrap, signal…) but its entry. */
export interface PhaseOptions extends Omit<RunTaskOptions, 'task' | 'input'> {
  entry: PhaseEntry;
}

export type { UnitFailure };

/** The `TaskEntry` the launcher starts for a phase entry. */
export function taskEntry(entry: PhaseEntry): TaskEntry {
  // A command entry is a TaskEntry already (its argv and its unrecoverable exit codes).
  return 'module' in entry ? { module: entry.module } : entry;
}

/** The `env` of a runner's start message: the phase's secrets, set before the module is imported. */
export function secretEnv(options: Pick<PhaseOptions, 'secrets'>): { env?: Record<string, string> } {
  return options.secrets !== undefined && Object.keys(options.secrets).length > 0
    ? { env: { ...options.secrets } }
    : {};
}
