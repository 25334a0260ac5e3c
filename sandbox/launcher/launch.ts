/**
 * What to start for one sandbox, as data: the argv (prlimit → bwrap → the command, or the bare
 * command in development mode), its environment, and the sandbox's own cgroup, made with its
 * limits before anything starts. Shared by a task (`run-task.ts`) and the phases of a parallel
 * task (`phases/`): every sandbox gets the same walls and the same limits.
 */
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';

import { SandboxUnavailableError, TaskFailedError } from '../../lib/core/errors.js';
import type { CompiledTaskLimits } from '../../lib/core/limits.js';
import { buildBwrapArgs, PACKAGE_MOUNT, RUNNER_AS_PID_1_ARGS, RUNTIME_MOUNT, sandboxNodePath } from './bwrap-args.js';
import { sandboxSyncArgs } from './cgroup/attach.js';
import type { AvailableCgroupSupport, CgroupSupport } from './cgroup/support.js';
import { createTaskCgroup, type TaskCgroup } from './cgroup/task-cgroup.js';
import { openSandboxNetwork, type SandboxNetwork, type SandboxNetworkOptions } from './network/sandbox-network.js';
import { NODE_MARK_VARIABLE } from './orphans.js';
import { nodeMark } from './process-mark.js';
import { prlimitArgs } from './rlimits.js';
import { RUNNER_FILE, RUNTIME_DIR } from './runtime-dir.js';
import { type HeldSandboxUser, type SandboxUser, type SandboxUsers, takeSandboxUser } from './sandbox-users.js';
import { seccompFlags, WITH_SECCOMP } from './seccomp.js';
import { encodeSecretArgs, secretArgsFlags } from './secret-args.js';

const NODE_BINARY = realpathSync(process.execPath);

/** What to start in the sandbox: a JavaScript module under the runner, or a command's argv. */
export interface TaskEntry {
  module?: string;
  command?: readonly string[];
  /** A command's exit codes that mean "failed for good, do not retry" (`tydra.json`). */
  unrecoverableExitCodes?: readonly number[];
}

/** Everything about a sandbox but what runs in it and its input. */
export interface SandboxOptions {
  packageDir: string;
  instanceId: string;
  attempt: number;
  /** The limits that apply (see `lib/core/limits.ts`). */
  limits: CompiledTaskLimits;
  /** Absolute path of bwrap; `undefined` runs the task WITHOUT a sandbox (development only). */
  bwrap: string | undefined;
  /** Absolute path of util-linux prlimit, which applies the rlimits. Required with `bwrap`. */
  prlimit?: string;
  /**
   * Host user the sandbox runs as, or the users it takes one of (`sandbox-users.ts`). bwrap maps
   * the task's uid 65534 to the user that starts it, so a node running as root must start it as
   * an unprivileged user, or the task is the host's root for the kernel (sysctls, files of
   * mounts). @defaultValue the node's own user
   */
  sandboxUser?: SandboxUser | SandboxUsers;
  /** The runner folder mounted at `/opt/tydra` (see `installRuntime`). @defaultValue this install's `sandbox/` */
  runtimeDir?: string;
  /** How TaskInstance cgroups are made on this host (`detectCgroups`); absent or none: rlimits only. */
  cgroups?: CgroupSupport;
  /**
   * Aborting it kills the sandbox (SIGTERM, then SIGKILL after a grace period) and the run
   * rejects with `signal.reason` itself when that is an `Error`: pass a typed reason (such as
   * `TaskCancelledError`, or the node's own shutdown error) and tell the endings apart with
   * `instanceof`, never by message. Any other reason rejects with `TaskFailedError('cancelled')`.
   * The same holds when the signal is already aborted at the call. A limit broken or the
   * timeout reached before the abort still wins: the run rejects with that error instead.
   */
  signal?: AbortSignal;
  onProgress?: (value: number | Record<string, unknown>) => void;
  /** Every log line: the task's stdout and stderr (prefixed `[stdout] ` / `[stderr] `) and `ctx.log`. */
  onLog?: (line: string) => void;
  /**
   * The submission's environment variables (checked by the node: see `lib/core/task-env.ts`),
   * set in this sandbox only, beneath tydra's own variables.
   */
  env?: Readonly<Record<string, string>>;
  /**
   * Secret values by environment variable name; never on the command line of bwrap or prlimit
   * (any user of the host can read those). A module's runner gets them in its `start` message; a
   * command gets them from bwrap through `--args` (`secret-args.ts`).
   */
  secrets?: Readonly<Record<string, string>>;
  /** Largest result (JSON bytes); for a parallel task, of each work unit and each work result. @defaultValue 16 MiB */
  maxResultBytes?: number;
  /**
   * The task's endpoints and the node's verdict on each (`network/sandbox-network.ts`). Absent
   * or empty: no network at all, and no forwarder. Ignored without bwrap (the host's network).
   */
  network?: SandboxNetworkOptions;
}

/** A sandbox ready to spawn. */
export interface Launch {
  file: string;
  args: string[];
  isModule: boolean;
  sandboxed: boolean;
  /** Environment of the spawned process (bwrap's own is empty: it sets the task's). */
  env: Record<string, string>;
  /** The sandbox's cgroup, made already; whoever spawns the sandbox removes it. */
  cgroup: TaskCgroup | undefined;
  /** The sandbox's network, open already; whoever spawns the sandbox closes it. */
  network?: SandboxNetwork;
  /** bwrap's `--args` input (the secrets' `--setenv`s), written to its pipe at spawn. */
  secretArgs?: Buffer;
  /** bwrap reads the seccomp filter from `SECCOMP_FD` (`seccomp.ts`), given at spawn. */
  seccomp?: boolean;
  /** The host user it runs as, taken for it; whoever spawns the sandbox releases it at the end. */
  user?: HeldSandboxUser;
  /** A command's exit codes that fail it for good (`TaskEntry`). */
  unrecoverableExitCodes?: readonly number[];
}

/** The argv, environment and cgroup of a sandbox running `entry`; throws before making anything on bad options. */
export async function prepareLaunch(options: SandboxOptions, entry: TaskEntry): Promise<Launch> {
  // A host user of its own for the sandbox (`sandbox-users.ts`), given back by whoever releases it.
  const held = options.bwrap === undefined ? undefined : takeSandboxUser(options.sandboxUser);
  try {
    const launch = { ...(await launchOf(options, entry, held?.user)), user: held };
    const codes = entry.unrecoverableExitCodes;
    return launch.isModule || codes === undefined ? launch : { ...launch, unrecoverableExitCodes: codes };
  } catch (error) {
    held?.release();
    throw error;
  }
}

async function launchOf(options: SandboxOptions, entry: TaskEntry, user: SandboxUser | undefined): Promise<Launch> {
  const { instanceId, bwrap, limits } = options;
  const isModule = entry.module !== undefined;
  const cgroups =
    bwrap !== undefined && options.cgroups !== undefined && options.cgroups.mode !== 'none'
      ? options.cgroups
      : undefined;
  const command = entryCommand(options, entry, cgroups !== undefined);
  const env = {
    ...options.env,
    TYDRA_INSTANCE_ID: instanceId,
    TYDRA_ATTEMPT: String(options.attempt),
    TYDRA_PACKAGE_DIR: bwrap === undefined ? options.packageDir : PACKAGE_MOUNT,
  };
  if (command.length === 0) {
    throw new TaskFailedError('Expected a command to run, got an empty one', instanceId);
  }
  if (bwrap === undefined) {
    const [file = '', ...args] = command;
    // Unsandboxed (development only): a child's environ is readable by its own user alone.
    const hostEnv = { PATH: process.env.PATH ?? '', HOME: '/tmp', ...(isModule ? {} : options.secrets), ...env };
    return { file, args, isModule, sandboxed: false, env: hostEnv, cgroup: undefined };
  }
  if (options.prlimit === undefined) {
    throw new SandboxUnavailableError('Expected the path of prlimit to run a sandboxed task, got none');
  }
  // Without a cgroup the address-space rlimit is the memory fallback of a command. A command with
  // a network gets it from its forwarder (a Node process, which cannot start under it).
  const addressSpaceBytes = cgroups === undefined && !isModule ? limits.memoryBytes : undefined;
  const hasNetwork = (options.network?.endpoints.length ?? 0) > 0;
  const rlimits = prlimitArgs({
    cpuSeconds: Math.max(1, Math.ceil(limits.cpuMs / 1000)),
    openFiles: limits.openFiles,
    fileSizeBytes: limits.fileSizeBytes,
    core: 0,
    // Not for JavaScript: V8 reserves far more address space than it uses; the heap flag bounds it.
    ...(addressSpaceBytes !== undefined && !hasNetwork ? { addressSpaceBytes } : {}),
  });
  const network = hasNetwork ? await openNetwork(options, { isModule, user }, addressSpaceBytes) : undefined;
  const mounts = {
    packageDir: options.packageDir,
    runtimeDir: options.runtimeDir ?? RUNTIME_DIR,
    nodeBinary: NODE_BINARY,
    scratchBytes: limits.scratchBytes,
    extraMounts: network?.mountArgs,
  };
  const started = network?.wrap(command, sandboxNodePath(NODE_BINARY), RUNTIME_MOUNT) ?? command;
  // A module's runner gets them in its start message and sets them after it started: they are
  // then in no process's launch environment. A command can only get them in its environment.
  const secrets = !isModule && Object.keys(options.secrets ?? {}).length > 0 ? options.secrets : undefined;
  const extra = extraBwrapArgs(isModule && cgroups !== undefined, secrets !== undefined);
  const args = [...rlimits, bwrap, ...buildBwrapArgs(mounts, env, started, extra)];
  const fdInputs = {
    seccomp: WITH_SECCOMP,
    ...(secrets !== undefined ? { secretArgs: encodeSecretArgs(secrets) } : {}),
  };
  // One cgroup per sandbox, made before it and joined by it before the task runs.
  const cgroup = cgroups === undefined ? undefined : await taskCgroupOf(cgroups, limits, network);
  // bwrap's own environment is only this node's mark (`orphans.ts`); the task's is set by --clearenv.
  const launchEnv = { [NODE_MARK_VARIABLE]: nodeMark() };
  return { file: options.prlimit, args, isModule, sandboxed: true, env: launchEnv, cgroup, network, ...fdInputs };
}

/** The sandbox's cgroup with its limits; its network is closed if the cgroup cannot be made. */
function taskCgroupOf(
  cgroups: AvailableCgroupSupport,
  limits: CompiledTaskLimits,
  network: SandboxNetwork | undefined,
): Promise<TaskCgroup> {
  const cgroupLimits = { memoryBytes: limits.memoryBytes, pids: limits.pids };
  return createTaskCgroup(cgroups, `task-${randomUUID()}`, cgroupLimits).catch(async (error: unknown) => {
    await network?.close();
    throw error;
  });
}

/**
 * The sync pipes' flags, `--as-pid-1` for a runner with a cgroup (`bwrap-args.ts`), `--args` for
 * a command's secrets, `--seccomp` for the key calls' filter (`seccomp.ts`).
 */
function extraBwrapArgs(runnerAsPid1: boolean, hasSecrets: boolean): string[] {
  return [
    ...sandboxSyncArgs(),
    ...(runnerAsPid1 ? RUNNER_AS_PID_1_ARGS : []),
    ...(hasSecrets ? secretArgsFlags() : []),
    ...(WITH_SECCOMP ? seccompFlags() : []),
  ];
}

/** The sandbox's network, for a task with endpoints (`network/sandbox-network.ts`). */
function openNetwork(
  options: SandboxOptions,
  sandbox: { isModule: boolean; user: SandboxUser | undefined },
  addressSpaceBytes: number | undefined,
): Promise<SandboxNetwork | undefined> {
  const { network, prlimit } = options;
  if (network === undefined) {
    return Promise.resolve(undefined);
  }
  return openSandboxNetwork(network, {
    ...{ isModule: sandbox.isModule, sandboxUser: sandbox.user, env: options.env },
    commandRlimits:
      addressSpaceBytes === undefined || prlimit === undefined ? [] : [prlimit, `--as=${addressSpaceBytes}`, '--'],
  });
}

/** The argv started in the sandbox: node and the runner for a module, else the task's command. */
function entryCommand(options: SandboxOptions, entry: TaskEntry, withCgroup: boolean): readonly string[] {
  const { bwrap } = options;
  if (entry.module === undefined) {
    return entry.command ?? [];
  }
  return [
    bwrap === undefined ? NODE_BINARY : sandboxNodePath(NODE_BINARY),
    '--disable-proto=delete',
    // Without a cgroup, V8's heap limit is the memory limit of a JavaScript task (V8 reserves
    // too much address space for RLIMIT_AS). With one, the cgroup bounds every process, and
    // the flag is left out: it made a sandboxed start about 10 ms slower here.
    ...(withCgroup ? [] : [`--max-old-space-size=${heapMiB(options.limits.memoryBytes)}`]),
    `${bwrap === undefined ? RUNTIME_DIR : RUNTIME_MOUNT}/${RUNNER_FILE}`,
  ];
}

/** The V8 heap limit for a memory limit: three quarters of it, leaving room for the rest. */
function heapMiB(memoryBytes: number): number {
  return Math.max(16, Math.floor((memoryBytes * 0.75) / (1024 * 1024)));
}
