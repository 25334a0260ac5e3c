/**
 * TEMPORARY: what to start for each phase of a parallel task; replaced at merge by the
 * manifest module's `parallelEntries`.
 */
import type { PhaseEntry } from '../../../sandbox/launcher/phases/index.js';

interface LooseSpec {
  kind?: string;
  module?: string;
  split?: { command: string[] };
  work?: { command: string[] };
  reduce?: { command: string[] };
}

export function parallelEntriesOf(task: object): { split: PhaseEntry; work: PhaseEntry; reduce: PhaseEntry } {
  const spec = task as LooseSpec;
  if (spec.module !== undefined) {
    return {
      split: { module: spec.module, mode: 'split' },
      work: { module: spec.module, mode: 'work' },
      reduce: { module: spec.module, mode: 'reduce' },
    };
  }
  return {
    split: { command: spec.split?.command ?? [] },
    work: { command: spec.work?.command ?? [] },
    reduce: { command: spec.reduce?.command ?? [] },
  };
}

export function isParallel(task: object): boolean {
  return (task as LooseSpec).kind === 'parallel';
}
