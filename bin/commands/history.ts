/** `tydra runs` (TaskInstances, newest first) and `tydra rerun ID` (the same input and options again). */
import { type Command, Option } from 'commander';

import type { RunRow, TaskState } from '../../lib/index.js';
import { addRetentionOptions, type ClientFlags, withClient } from '../cli/common.js';
import { print } from '../cli/format.js';
import { integer } from '../cli/parse.js';
import { ProgressBar } from '../cli/progress.js';
import { clientCommand, printResult } from './client.js';

const STATES: TaskState[] = ['queued', 'delayed', 'dispatched', 'running', 'completed', 'failed', 'cancelled'];

type Flags = ClientFlags & { json?: boolean };

export function registerHistoryCommands(program: Command): void {
  registerRuns(program);
  registerRerun(program);
}

/** A row of `tydra runs`, as `--json` prints it: dates as ISO strings, `null` for none. */
function jsonRow(row: RunRow): Record<string, unknown> {
  return {
    id: row.id,
    ref: row.ref,
    state: row.state,
    submitted: new Date(row.submittedAt).toISOString(),
    finished: row.finishedAt === undefined ? null : new Date(row.finishedAt).toISOString(),
    node: row.nodeId ?? null,
    ...(row.rerunOf !== undefined ? { rerunOf: row.rerunOf } : {}),
    ...(row.sequenceId !== undefined ? { sequence: row.sequenceId } : {}),
  };
}

function textRow(row: RunRow): string {
  const finished = row.finishedAt === undefined ? '-' : new Date(row.finishedAt).toISOString();
  const rerun = row.rerunOf === undefined ? '' : `  rerun of ${row.rerunOf}`;
  return `${row.id}  ${row.state}  ${row.ref}  submitted ${new Date(row.submittedAt).toISOString()}  finished ${finished}  node ${row.nodeId ?? '-'}${rerun}`;
}

type RunsFlags = Flags & {
  task?: string;
  state?: TaskState;
  since?: string;
  limit?: number;
  all?: boolean;
};

function registerRuns(program: Command): void {
  clientCommand(program, 'runs', 'list TaskInstances, newest first (what retention has kept)')
    .option('--task <ref>', 'only this package (NAME) or task (NAME/TASK)')
    .addOption(new Option('--state <state>', 'only TaskInstances in this state').choices(STATES))
    .option('--since <duration>', 'only TaskInstances submitted within this long, e.g. 30s, 10m, 1h, 2d')
    .option('--limit <n>', 'at most this many, 1 to 1000 (default: 20)', integer)
    .option('--all', 'include the steps of sequences')
    .action((flags: RunsFlags) =>
      withClient(flags, async (tydra) => {
        const rows = await tydra.runs({
          ...(flags.task !== undefined ? { task: flags.task } : {}),
          ...(flags.state !== undefined ? { state: flags.state } : {}),
          ...(flags.since !== undefined ? { since: flags.since } : {}),
          ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
          ...(flags.all ? { all: true } : {}),
        });
        print(flags.json, rows.map(jsonRow), rows.length === 0 ? 'no TaskInstances' : rows.map(textRow).join('\n'));
      }),
    );
}

function registerRerun(program: Command): void {
  addRetentionOptions(
    clientCommand(
      program,
      'rerun',
      'submit a new TaskInstance with the input and options of ID, on the same version; print its result like run',
    ),
  )
    .argument('<id>', 'TaskInstance id')
    .option('--latest', 'run the latest version of its task instead of the version ID ran')
    .option('--detach', 'print the new TaskInstance id and return without waiting')
    .action((id: string, flags: Flags & { latest?: boolean; detach?: boolean }) =>
      withClient(flags, async (tydra) => {
        const run = await tydra.rerun(id, { latest: flags.latest ?? false });
        if (flags.detach) {
          print(flags.json, { id: run.id, ref: run.ref, rerunOf: id }, run.id);
          return;
        }
        await printResult(run, flags.json, flags.json ? undefined : new ProgressBar(process.stderr));
      }),
    );
}
