// TEMPORARY stub with the agreed API (PARALLEL-DESIGN.md); replaced by the sandbox-phases branch.
import type { RunTaskOptions } from '../run-task.js';

export type PhaseEntry = { module: string; mode: 'split' | 'work' | 'reduce' } | { command: readonly string[] };
export interface PhaseOptions extends Omit<RunTaskOptions, 'task' | 'input'> {
  entry: PhaseEntry;
}
export interface WorkSandbox {
  readonly id: string;
  readonly alive: boolean;
  run(unit: { index: number; attempt: number; value: unknown }, onLog?: (line: string) => void): Promise<unknown>;
  close(): Promise<void>;
}
export function runSplit(
  _o: PhaseOptions & { input: unknown; onUnit(unit: unknown): void | Promise<void> },
): Promise<number> {
  return Promise.reject(new Error('not yet'));
}
export function runReduce(
  _o: PhaseOptions & {
    input: unknown;
    results: AsyncIterable<unknown>;
    failures: Array<{ index: number; message: string }>;
  },
): Promise<unknown> {
  return Promise.reject(new Error('not yet'));
}
export function startWorker(_o: PhaseOptions): Promise<WorkSandbox> {
  return Promise.reject(new Error('not yet'));
}
