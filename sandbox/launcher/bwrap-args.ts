/**
 * bubblewrap argv, built as data. Each function returns one group of flags; none runs anything,
 * so each can be tested without bwrap. Policy: nothing of the host is visible unless listed
 * here, and nothing is writable except the sandbox's own size-capped `/tmp`.
 */
import { lstatSync, readlinkSync } from 'node:fs';

/** Where the package is mounted, read-only. Also the working directory of every task. */
export const PACKAGE_MOUNT = '/task';
/** Where tydra's compiled `sandbox/` folder (the runner) is mounted, read-only. */
export const RUNTIME_MOUNT = '/opt/tydra';
/** Where the Node binary is mounted when it lives outside `/usr`. */
export const NODE_MOUNT = '/opt/tydra-node/node';
/** The unprivileged user and group a task runs as (nobody / nogroup). */
export const SANDBOX_UID = 65534;

/** The environment a task sees; nothing else of the node's environment crosses over. */
export const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin';

export interface SandboxMounts {
  packageDir: string;
  runtimeDir: string;
  /** Real path of the Node binary, bound at `NODE_MOUNT` when not under `/usr`. */
  nodeBinary?: string;
  scratchBytes: number;
  /** More mounts (bwrap flags), made before `/` turns read-only: a task's network (`network/`). */
  extraMounts?: readonly string[];
}

/** Own namespaces for everything (network: loopback only), no capabilities, no new user namespaces. */
export function isolationArgs(): string[] {
  return [
    '--unshare-all',
    '--unshare-user',
    '--uid',
    String(SANDBOX_UID),
    '--gid',
    String(SANDBOX_UID),
    '--disable-userns',
    '--cap-drop',
    'ALL',
    // Kill the sandbox if the node dies (even by SIGKILL), and detach it from any terminal
    // (TIOCSTI injection, CVE-2017-5226).
    '--die-with-parent',
    '--new-session',
    '--hostname',
    'tydra-sandbox',
  ];
}

/**
 * For a JavaScript task's sandbox with a cgroup: the runner's Node is the sandbox's pid 1 instead of
 * a child of bwrap's own pid 1 (an init that only reaps and relays the exit status). One process
 * fewer per sandbox: bwrap neither forks nor keeps that init, about 3 ms of CPU per TaskInstance
 * on the 2-core bench machine (docs/benchmarks.md), and the process the node moves into the cgroup
 * is the runner itself, so the move finds no child to chase (`cgroup/attach-overlapped.ts`).
 *
 * What changes for the task, and why only with a cgroup: a namespace's pid 1 gets no signal it
 * has no handler for, except SIGKILL and SIGSTOP from outside and the faults of its own code.
 * Nothing the node does relies on another signal (it stops a sandbox by signalling bwrap, whose
 * death SIGKILLs pid 1: `--die-with-parent`), but the CPU rlimit's first signal, SIGXCPU, is
 * lost; its SIGKILL a second later is not. With a cgroup the node reads the sandbox's CPU time
 * and stops it at the limit itself (`monitor.ts`); without one that SIGXCPU is how the limit
 * shows, so the runner then keeps bwrap's init. Also, orphans of the task's own children are
 * reparented to the runner, which does not reap them: they stay zombies, counted by the cgroup's
 * process limit, until the sandbox ends.
 */
export const RUNNER_AS_PID_1_ARGS: readonly string[] = ['--as-pid-1'];

/** A cleared environment plus the documented allow-list. */
export function environmentArgs(extra: Record<string, string>): string[] {
  // tydra's variables last: `extra` cannot replace them.
  const env: Record<string, string> = { ...extra, PATH: SANDBOX_PATH, HOME: '/tmp', TMPDIR: '/tmp', LANG: 'C.UTF-8' };
  return ['--clearenv', ...Object.entries(env).flatMap(([name, value]) => ['--setenv', name, value])];
}

/**
 * All a sandbox sees of the host's `/etc`, each where the host has it: what the dynamic loader
 * and the C library read, the `alternatives` links some of `/usr/bin` point through, and the
 * time zone. No passwd, no shadow, no hosts.
 */
export const SYSTEM_ETC_FILES: readonly string[] = [
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/alternatives',
  '/etc/localtime',
];

/**
 * The system folders a runtime needs, read-only. On merged-/usr systems `/bin`, `/lib`… are
 * symlinks into `/usr`, recreated as symlinks; elsewhere they are bound if they exist.
 */
export function systemMountArgs(root = '/'): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const dir of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    const link = readLinkOrUndefined(`${root === '/' ? '' : root}${dir}`);
    if (link !== undefined) {
      args.push('--symlink', link, dir);
    } else {
      args.push('--ro-bind-try', dir, dir);
    }
  }
  for (const file of SYSTEM_ETC_FILES) {
    args.push('--ro-bind-try', file, file);
  }
  args.push('--proc', '/proc', ...procCoverArgs(), '--dev', '/dev');
  return args;
}

/**
 * The parts of a fresh `/proc` that act on the whole host, re-bound read-only over it. The
 * kernel lets a write to a sysctl through on the file mode alone when the writer's uid is the
 * host's root, and a node running as root makes the sandbox's uid 65534 exactly that (bwrap maps
 * it to the caller's uid): without this cover a task could set `kernel.core_pattern` or
 * `kernel.modprobe` and run code as root on the host. bwrap covers `irq` and `bus` itself but
 * skips `sys`. What a task reads there is still its own namespaces' view (hostname, network).
 */
export function procCoverArgs(): string[] {
  return ['sys', 'sysrq-trigger', 'irq', 'bus'].flatMap((entry) => [
    '--ro-bind-try',
    `/proc/${entry}`,
    `/proc/${entry}`,
  ]);
}

/**
 * The package and the runner read-only; private size-capped tmpfs for scratch: `/tmp`, and
 * `/dev/shm` for POSIX shared memory and semaphores (Python's `multiprocessing` locks need it).
 * bwrap's `--dev` makes `/dev/shm` a folder of its `/dev` tmpfs, which has no size of its own
 * (half the host's RAM) and stays writable after `--remount-ro /`: a task could park gigabytes
 * there past the scratch cap, bounded only by a memory cgroup, and by nothing in `rlimits` mode.
 */
export function taskMountArgs(mounts: SandboxMounts): string[] {
  const args = [
    '--size',
    String(mounts.scratchBytes),
    '--tmpfs',
    '/tmp',
    '--size',
    String(mounts.scratchBytes),
    '--tmpfs',
    '/dev/shm',
    '--ro-bind',
    mounts.packageDir,
    PACKAGE_MOUNT,
    '--ro-bind',
    mounts.runtimeDir,
    RUNTIME_MOUNT,
  ];
  if (mounts.nodeBinary !== undefined && !mounts.nodeBinary.startsWith('/usr/')) {
    args.push('--ro-bind', mounts.nodeBinary, NODE_MOUNT);
  }
  args.push(...(mounts.extraMounts ?? []));
  // Last, once every mount point exists: the root tmpfs bwrap builds the sandbox in becomes
  // read-only, so `/` and `/etc` cannot be written (nor used as scratch beyond the /tmp cap), and
  // so does `/dev`'s (not recursive: the device nodes, `/dev/pts` and `/dev/shm` are mounts of
  // their own; a device node stays writable on a read-only mount).
  return [...args, '--remount-ro', '/', '--remount-ro', '/dev', '--chdir', PACKAGE_MOUNT];
}

/** The full argv for `bwrap`: flags, then `--` so the command can never be read as a flag. */
export function buildBwrapArgs(
  mounts: SandboxMounts,
  env: Record<string, string>,
  command: readonly string[],
  extra: readonly string[] = [],
): string[] {
  return [
    ...isolationArgs(),
    ...environmentArgs(env),
    ...systemMountArgs(),
    ...taskMountArgs(mounts),
    ...extra,
    '--',
    ...command,
  ];
}

/** The Node binary as seen from inside the sandbox. */
export function sandboxNodePath(nodeBinary: string): string {
  return nodeBinary.startsWith('/usr/') ? nodeBinary : NODE_MOUNT;
}

function readLinkOrUndefined(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}
