/**
 * The commands that talk to a cluster as a client: `deploy`, `run`, `cancel`, `status`, `nodes`,
 * `packages`, `undeploy`, `prune`. Each opens a {@link Tydra} for the call, bounded by
 * `--connect-timeout`, and closes it. What a command needs beyond its flags (the client, the
 * package name parsers) is imported when it runs, so `--help` stays fast.
 */
import { type Command, Option } from 'commander';

import type { TaskRun } from '../../lib/client/task-run.js';
import type { Tydra } from '../../lib/client/client.js';
import { TaskCancelledError, TaskFailedError } from '../../lib/core/errors.js';
import type { TaskLimits } from '../../lib/core/limit-values.js';
import { MASTER_DEFAULTS } from '../../lib/master/defaults.js';
import type { SubmitOptions } from '../../lib/client/types.js';
import {
  addRetentionOptions,
  type ClientFlags,
  connectTimeoutOption,
  jsonOption,
  namespaceOption,
  redisOption,
  withClient,
} from '../cli/common.js';
import { formatNode, formatPrune, formatStatus, formatVersion, print, versionRow } from '../cli/format.js';
import { readInput } from '../cli/input.js';
import { ProgressBar } from '../cli/progress.js';
import {
  backoffValue,
  collectEnv,
  collectLimits,
  integer,
  LIMIT_FLAG_NAMES,
  positiveInteger,
  stripUndefined,
  zonedDateTime,
} from '../cli/parse.js';

type Flags<T = object> = ClientFlags & { json?: boolean } & T;

/** A client command: `--redis`, `--connect-timeout` and `--json` come with it. */
export function clientCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .addOption(redisOption())
    .addOption(namespaceOption())
    .addOption(connectTimeoutOption())
    .addOption(jsonOption());
}

export function registerClientCommands(program: Command): void {
  clientCommand(
    program,
    'deploy',
    'pack DIR deterministically and store it as a version of its package; prints name@sha1',
  )
    .argument('<dir>', 'package folder (with tydra.json)')
    .action((dir: string, flags: Flags) =>
      withClient(flags, async (tydra) => {
        const result = await tydra.deploy(dir);
        print(flags.json, result, `${result.ref}${result.stored ? '' : ' (unchanged)'}`);
      }),
    );
  registerRun(program);
  registerCancel(program);
  clientCommand(program, 'status', 'show the state, node, progress, result or error and logs of a TaskInstance')
    .argument('<id>', 'TaskInstance id')
    .action((id: string, flags: Flags) =>
      withClient(flags, async (tydra) => {
        const status = await tydra.run(id).status();
        print(flags.json, status, formatStatus(status));
      }),
    );
  clientCommand(program, 'nodes', 'list registered nodes and whether they are alive').action((flags: Flags) =>
    withClient(flags, async (tydra) => {
      const nodes = await tydra.nodes();
      print(flags.json, nodes, nodes.length === 0 ? 'no nodes registered' : nodes.map(formatNode).join('\n'));
    }),
  );
  registerPackages(program);
  registerUndeploy(program);
  registerPrune(program);
}

interface RunFlags {
  input?: string;
  inputFile?: string;
  detach?: boolean;
  timeout?: number;
  attempts?: number;
  limit?: TaskLimits;
  retryOnLimit?: boolean;
  maxFailedWorkunits?: number;
  priority?: number;
  delay?: number;
  at?: string;
  key?: string;
  backoff?: { type: 'exponential' | 'fixed'; delayMs: number };
  env?: Record<string, string>;
  secret?: Record<string, string>;
}

function registerRun(program: Command): void {
  addRetentionOptions(
    clientCommand(program, 'run', 'submit a TaskInstance of REF (name[@sha1]/task) and print its result as JSON'),
  )
    .argument('<ref>', 'task reference, e.g. hello/greet or hello@1a2b3c4/greet')
    .addOption(new Option('--input <json>', 'input as JSON (UTF-8)').conflicts('inputFile'))
    .option('--input-file <file>', 'read the input JSON (UTF-8) from a file')
    .option('--detach', 'print the TaskInstance id and return without waiting')
    .option('--timeout <ms>', 'wall-clock limit of the task', positiveInteger)
    .option('--attempts <n>', 'runs before the task fails for good', positiveInteger)
    .option('--limit <name=value>', `limit for this run, repeatable; names: ${LIMIT_FLAG_NAMES}`, collectLimits)
    .option('--retry-on-limit', 'retry (within --attempts) a run that broke a limit')
    .option(
      '--max-failed-workunits <n>',
      "parallel tasks: workunits that may fail before the TaskInstance does (default: the task's, else 0)",
      integer,
    )
    .option('--durable-submit', 'fail unless a Redis replica acknowledged the submit within 1 s (Redis WAIT)')
    .option(
      '--priority <n>',
      'BullMQ priority, 1 (highest) to 2097152; unset runs before every prioritised one',
      integer,
    )
    .addOption(
      new Option('--delay <ms>', 'wait this long before the TaskInstance may start').argParser(integer).conflicts('at'),
    )
    .option(
      '--at <iso-date>',
      'start no earlier than this ISO 8601 date-time, in the future and within a year: YYYY-MM-DDTHH:MM:SSZ, or with an offset such as +01:00 instead of Z',
      zonedDateTime,
    )
    .option('--key <key>', 'idempotency key: a second run with the same key (same package and task) returns the first')
    .option('--backoff <type:ms>', 'wait between attempts: exponential:MS or fixed:MS', backoffValue)
    .option('--env <NAME=value>', "environment variable in this TaskInstance's sandbox only, repeatable", collectEnv)
    .option(
      '--secret <NAME=STORED>',
      'environment variable NAME gets stored secret STORED (`tydra secret set`), repeatable',
      collectEnv,
    )
    .action(async (ref: string, flags: Flags<RunFlags>) => {
      const input = await readInput(flags);
      await withClient(flags, async (tydra) => {
        const run = await tydra.submit(ref, input, submitOptionsOf(flags));
        if (flags.detach) {
          print(flags.json, { id: run.id, ref: run.ref }, run.id);
          return;
        }
        await printResult(run, flags.json, flags.json ? undefined : new ProgressBar(process.stderr));
      });
    });
}

/** The submit options the flags give; flags not given stay out, so the client's defaults apply. */
function submitOptionsOf(flags: RunFlags): SubmitOptions {
  return stripUndefined({
    timeoutMs: flags.timeout,
    attempts: flags.attempts,
    limits: flags.limit,
    retryOnLimit: flags.retryOnLimit,
    maxFailedWorkunits: flags.maxFailedWorkunits,
    priority: flags.priority,
    delayMs: flags.delay,
    at: flags.at,
    key: flags.key,
    backoff: flags.backoff,
    env: flags.env,
    secrets: flags.secret,
  });
}

/**
 * Prints the result; a failed or cancelled TaskInstance sets exit code 1 and says why on stderr.
 * Meanwhile `bar` (on a terminal only) shows the progress; it is erased before anything is printed.
 */
export async function printResult(
  run: TaskRun,
  json: boolean | undefined,
  bar: ProgressBar | undefined,
): Promise<void> {
  if (bar?.enabled) {
    run.on('progress', (progress) => bar.update(progress));
  }
  let outcome: { result: unknown } | { error: unknown };
  try {
    outcome = { result: await run.result() };
  } catch (error) {
    outcome = { error };
  } finally {
    run.close();
    bar?.clear();
  }
  if ('result' in outcome) {
    const data = json ? { id: run.id, ref: run.ref, state: 'completed', result: outcome.result } : outcome.result;
    process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  const { error } = outcome;
  if (!(error instanceof TaskFailedError)) {
    throw error;
  }
  const state = error instanceof TaskCancelledError ? 'cancelled' : 'failed';
  if (json) {
    process.stdout.write(`${JSON.stringify({ id: run.id, ref: run.ref, state, error: error.message })}\n`);
  }
  process.stderr.write(
    `TaskInstance ${run.id} ${state === 'cancelled' ? 'was cancelled' : `failed: ${error.message}`}\n`,
  );
  process.exitCode = 1;
}

function registerCancel(program: Command): void {
  clientCommand(
    program,
    'cancel',
    'cancel a TaskInstance: removed if it has not started, killed on its node if it runs',
  )
    .argument('<id>', 'TaskInstance id')
    .option('--wait', 'wait until a running TaskInstance has ended, and print how it ended')
    .action((id: string, flags: Flags<{ wait?: boolean }>) =>
      withClient(flags, async (tydra) => {
        const result = await tydra.cancel(id);
        if (flags.wait && result.outcome === 'cancelling') {
          await printCancelWait(tydra, id, flags.json);
          return;
        }
        const text = {
          removed: `${id}: removed before it started`,
          cancelling: `${id}: running; its node was told to kill it`,
          finished: `${id}: already finished; nothing to cancel`,
        }[result.outcome];
        print(flags.json, result, text);
      }),
    );
}

/** How long `tydra cancel --wait` waits for a running TaskInstance's node to kill it. */
const CANCEL_WAIT_MS = 60_000;

/**
 * `tydra cancel ID --wait` of a running TaskInstance: waits for it to end and says how it did
 * (`cancelled`, or how it ended first); one still running after {@link CANCEL_WAIT_MS} exits 1.
 */
async function printCancelWait(tydra: Tydra, id: string, json: boolean | undefined): Promise<void> {
  const run = tydra.run(id);
  // Its ending is read from the status below; a cancelled run's result() rejects, as it should.
  await run.result({ timeoutMs: CANCEL_WAIT_MS }).catch(() => undefined);
  const { state } = await run.status();
  const ended = state === 'cancelled' || state === 'completed' || state === 'failed';
  if (!ended) {
    process.exitCode = 1;
  }
  const text =
    state === 'cancelled'
      ? `${id}: cancelled`
      : ended
        ? `${id}: ${state} before its node could kill it`
        : `${id}: still ${state} after ${CANCEL_WAIT_MS / 1000} s; its node was told to kill it`;
  print(json, { id, outcome: 'cancelling', state }, text);
}

function registerPackages(program: Command): void {
  clientCommand(program, 'packages', 'list deployed packages, or the versions of NAME')
    .argument('[name]', 'package name')
    .action(async (name: string | undefined, flags: Flags) => {
      const { parsePackageName } = await import('../../lib/packages/task-ref.js');
      const checked = name === undefined ? undefined : parsePackageName(name);
      await withClient(flags, async (tydra) => {
        if (checked === undefined) {
          const names = await tydra.packageNames();
          print(flags.json, names, names.length === 0 ? 'no packages deployed' : names.join('\n'));
          return;
        }
        await printVersions(tydra, checked, flags.json);
      });
    });
}

async function printVersions(tydra: Tydra, name: string, json: boolean | undefined): Promise<void> {
  const { latest, versions } = await tydra.packageVersions(name);
  const rows = versions.map((v) => versionRow(v, latest));
  print(json, rows, rows.length === 0 ? `no versions of ${name}` : rows.map((r) => formatVersion(name, r)).join('\n'));
}

function registerUndeploy(program: Command): void {
  clientCommand(
    program,
    'undeploy',
    'remove a version (NAME@SHA1PREFIX) or every version (NAME) from use; bytes stay until no TaskInstance holds them',
  )
    .argument('<target>', 'NAME or NAME@SHA1PREFIX (at least 7 hex digits)')
    .action(async (target: string, flags: Flags) => {
      const { parsePackageVersion } = await import('../../lib/packages/task-ref.js');
      const { name, version } = parsePackageVersion(target);
      await withClient(flags, async (tydra) => {
        const result = await tydra.undeploy(name, version);
        const text = [
          result.undeployed.length === 0
            ? `nothing to undeploy: already out of use`
            : result.undeployed.map((sha1) => `undeployed ${name}@${sha1}`).join('\n'),
          `latest: ${result.latest === null ? 'none (the package can no longer be submitted)' : `${name}@${result.latest}`}`,
        ].join('\n');
        print(flags.json, result, text);
      });
    });
}

function registerPrune(program: Command): void {
  clientCommand(
    program,
    'prune',
    'delete package versions no TaskInstance can need (same logic as the prune job), and say why others are kept',
  )
    .option('--dry-run', 'report what would be removed; change nothing')
    .addOption(
      new Option('--grace <ms>', 'how long a version must have been without holders')
        .argParser(integer)
        .default(MASTER_DEFAULTS.pruneGraceMs),
    )
    .action((flags: Flags<{ dryRun?: boolean; grace: number }>) =>
      withClient(flags, async (tydra) => {
        const report = await tydra.prune({ dryRun: flags.dryRun ?? false, graceMs: flags.grace });
        print(flags.json, report, formatPrune(report));
      }),
    );
}
