/** Options of a node ({@link TydraNode}): raw → compiled, validated once. */
import { availableParallelism, homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';

import { z } from 'zod';

import { InvalidOptionError } from '../core/errors.js';
import {
  type CompiledTaskLimits,
  DEFAULT_MAX_TASK_LIMITS,
  DEFAULT_TASK_LIMITS,
  LIMIT_NAMES,
  type TaskLimits,
  taskLimitsSchema,
} from '../core/limits.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import {
  type CompiledMetricsOptions,
  compileMetricsOptions,
  type MetricsOptions,
  metricsShape,
} from '../core/metrics-options.js';
import {
  type CommonOptions,
  DEFAULT_REDIS_URL,
  loggerSchema,
  positiveInt,
  namespaceSchema,
  redisUrlSchema,
} from '../core/options.js';
import { loadSecretKey } from '../core/secret-box.js';
import { parseOptions } from '../core/validate.js';
import { type SandboxUser, SandboxUsers } from '../../sandbox/launcher/sandbox-users.js';
import { NODE_DEFAULTS } from './defaults.js';
import { compileConnectPolicy, type ConnectPattern } from './network/connect-policy.js';
import { type CompiledPackageLimits, compilePackageLimits, type PackageLimits } from '../packages/limits.js';

const nodeId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'letters, digits, `_`, `.` or `-`, at most 100');

/** Options of a node ({@link TydraNode}). */
export interface NodeOptions extends CommonOptions, MetricsOptions {
  /** Unique id of this node; its queue is `node.<id>`. @defaultValue `<hostname>-<pid>` */
  id?: string;
  /** TaskInstances (sandboxes) run at once. @defaultValue the number of CPUs */
  concurrency?: number;
  /** Where extracted package versions are cached. @defaultValue `/var/cache/tydra/packages` as root, else `~/.cache/tydra/packages` */
  cacheDir?: string;
  /**
   * Bytes of extracted files the package cache keeps. Above it, versions no running TaskInstance
   * uses are evicted, least recently used first; versions in use are never evicted, so the cache
   * may exceed the budget while they run. @defaultValue 10 GiB
   */
  cacheMaxBytes?: number;
  /**
   * Limits of a TaskInstance that sets none (neither its submission nor its `tydra.json`).
   * Missing keys take tydra's defaults: 60 s wall clock and CPU, 512 MiB memory, 64 processes,
   * 256 open files, 64 MiB largest file, 64 MiB scratch, 1 MiB output per stream.
   */
  taskLimits?: TaskLimits;
  /** The most a submission or `tydra.json` may ask for; larger requests are lowered to these. */
  maxTaskLimits?: TaskLimits;
  /** On close (SIGTERM), how long running TaskInstances may finish before they are killed and re-routed. @defaultValue 30,000 ms */
  drainTimeoutMs?: number;
  /** How often cached versions whose bytes left Redis (pruned) are removed from the cache. @defaultValue 60,000 ms */
  cachePruneMs?: number;
  /** Name of the parent cgroup under which each TaskInstance gets its own. @defaultValue `tydra` */
  cgroupName?: string;
  /**
   * Host user and group the sandboxes run as, the first of `sandboxUsers` when there are more.
   * bwrap maps a task's uid to the user that starts it, so a node running as root starts them
   * as unprivileged users; the package cache must then be reachable by them. 0 maps tasks to the
   * host's root: never do that outside a VM.
   * @defaultValue `{ uid: 60000, gid: 65534 }` when the node runs as root, else the node's own user
   */
  sandboxUser?: { uid: number; gid: number };
  /**
   * How many host users sandboxes take turns as: consecutive uids from `sandboxUser.uid`, one per
   * live sandbox while there are enough (`sandbox/launcher/sandbox-users.ts`: the kernel counts
   * inotify instances, queued signals, pipe buffers… per user, so with one user a task could use
   * them up for its neighbours). Needs a node running as root; pick uids nothing else uses.
   * @defaultValue 256 (uids 60000–60255) when the node runs as root and `sandboxUser` is not set, else 1
   */
  sandboxUsers?: number;
  /** Heartbeat period; a node is dead after 3 missed beats. @defaultValue 5,000 ms */
  heartbeatMs?: number;
  /**
   * BullMQ lock of a running job, renewed every half period. After a crash, a job is re-routed
   * to another node only once its lock has expired. @defaultValue 30,000 ms
   */
  lockDurationMs?: number;
  /**
   * Run tasks WITHOUT bubblewrap. Development only: task code then runs as the node's user with
   * the node's file system and network. Logged loudly at start and for every task.
   * @defaultValue false
   */
  unsafeNoSandbox?: boolean;
  /** Package limits enforced again at extraction. */
  limits?: PackageLimits;
  /**
   * The secret key (32 bytes, base64 or hex) that opens stored secrets; the CLI reads
   * `TYDRA_SECRET_KEY`. Without it the node refuses TaskInstances that need secrets. Never logged.
   * @defaultValue none
   */
  secretKey?: string;
  /** A file holding the secret key instead (`--secret-key-file`). @defaultValue none */
  secretKeyFile?: string;
  /**
   * `HOST:PORT` patterns (`--allow-connect`) of the endpoints this node opens to a task that
   * declares them in its `network.connect`; see `network/connect-policy.ts` for the grammar.
   * @defaultValue none: no task gets any network
   */
  allowConnect?: string[];
  /**
   * Most pre-started single-use sandboxes the node keeps for the simple JavaScript tasks it ran
   * lately (the warm pool, `warm-pool.ts`); 0 turns the pool off. @defaultValue the concurrency
   */
  warmMax?: number;
  /**
   * How long a pooled sandbox waits for a TaskInstance before it is stopped; a combination of
   * version, task and limits nobody ran for that long gets none. @defaultValue 300,000 ms
   */
  warmIdleMs?: number;
}
export interface CompiledNodeOptions extends CompiledMetricsOptions {
  redisUrl: string;
  /** The namespace every key and queue lives in (`lib/core/namespace.ts`). */
  namespace: string;
  logger: Logger;
  id: string;
  concurrency: number;
  cacheDir: string;
  cacheMaxBytes: number;
  taskLimits: CompiledTaskLimits;
  maxTaskLimits: CompiledTaskLimits;
  drainTimeoutMs: number;
  cachePruneMs: number;
  cgroupName: string;
  /** One user, the users sandboxes take turns as, or none (the node's own). */
  sandboxUser: SandboxUser | SandboxUsers | undefined;
  heartbeatMs: number;
  lockDurationMs: number;
  unsafeNoSandbox: boolean;
  limits: CompiledPackageLimits;
  /** The 32-byte secret key, when given. */
  secretKey: Buffer | undefined;
  allowConnect: ConnectPattern[];
  warmMax: number;
  warmIdleMs: number;
}

export { NODE_DEFAULTS };

const DAY_MS = 86_400_000;

const nodeSchema = z.strictObject({
  redis: redisUrlSchema.default(DEFAULT_REDIS_URL),
  namespace: namespaceSchema,
  logger: loggerSchema,
  id: nodeId.optional(),
  concurrency: positiveInt.max(1024).optional(),
  cacheDir: z.string().min(1).optional(),
  cacheMaxBytes: positiveInt.default(NODE_DEFAULTS.cacheMaxBytes),
  taskLimits: taskLimitsSchema.optional(),
  maxTaskLimits: taskLimitsSchema.optional(),
  drainTimeoutMs: z.number().int().min(0).max(DAY_MS).default(NODE_DEFAULTS.drainTimeoutMs),
  cachePruneMs: positiveInt.min(100).default(NODE_DEFAULTS.cachePruneMs),
  cgroupName: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a cgroup folder name')
    .default(NODE_DEFAULTS.cgroupName),
  sandboxUser: z
    .strictObject({
      uid: z
        .number()
        .int()
        .min(0)
        .max(2 ** 32 - 2),
      gid: z
        .number()
        .int()
        .min(0)
        .max(2 ** 32 - 2),
    })
    .optional(),
  sandboxUsers: positiveInt.max(65_536).optional(),
  heartbeatMs: positiveInt.min(100).max(600_000).default(NODE_DEFAULTS.heartbeatMs),
  lockDurationMs: positiveInt.min(1000).max(3_600_000).default(NODE_DEFAULTS.lockDurationMs),
  unsafeNoSandbox: z.boolean().default(NODE_DEFAULTS.unsafeNoSandbox),
  limits: z.record(z.string(), z.unknown()).optional(),
  ...metricsShape,
  secretKey: z.string().optional(),
  secretKeyFile: z.string().min(1).optional(),
  allowConnect: z.array(z.string()).max(256).default([]),
  warmMax: z.number().int().min(0).max(1024).optional(),
  warmIdleMs: positiveInt.min(1000).max(DAY_MS).default(NODE_DEFAULTS.warmIdleMs),
});

export function compileNodeOptions(raw: NodeOptions = {}): CompiledNodeOptions {
  const parsed = parseOptions(nodeSchema, raw);
  const maxTaskLimits = { ...DEFAULT_MAX_TASK_LIMITS, ...parsed.maxTaskLimits };
  const taskLimits = { ...DEFAULT_TASK_LIMITS, ...parsed.taskLimits };
  for (const name of LIMIT_NAMES) {
    if (taskLimits[name] > maxTaskLimits[name]) {
      if (parsed.taskLimits?.[name] === undefined) {
        // A lowered maximum lowers tydra's default with it.
        taskLimits[name] = maxTaskLimits[name];
      } else {
        throw new InvalidOptionError(
          `Expected the \`taskLimits.${name}\` option to be at most \`maxTaskLimits.${name}\` (${maxTaskLimits[name]}), got \`${taskLimits[name]}\` (number)`,
        );
      }
    }
  }
  const { secretKey, secretKeyFile, ...rest } = parsed;
  return {
    ...rest,
    ...compileMetricsOptions(parsed),
    secretKey: loadSecretKey({ secretKey, secretKeyFile }),
    allowConnect: compileConnectPolicy(parsed.allowConnect),
    redisUrl: parsed.redis,
    namespace: parsed.namespace,
    logger: parsed.logger ?? silentLogger(),
    id: parsed.id ?? defaultNodeId(),
    concurrency: parsed.concurrency ?? availableParallelism(),
    warmMax: parsed.warmMax ?? parsed.concurrency ?? availableParallelism(),
    cacheDir: resolve(parsed.cacheDir ?? defaultCacheDir()),
    limits: compilePackageLimits(raw.limits),
    sandboxUser: compileSandboxUsers(parsed.sandboxUser, parsed.sandboxUsers),
    taskLimits,
    maxTaskLimits,
  };
}

/**
 * Users nothing else on a host uses, one per live sandbox: uids 60000–60255, group nogroup. As
 * isolate's boxes do, they start at 60000, below systemd's dynamic users (61184–65519) and far
 * from login users; none needs an entry in `/etc/passwd`.
 */
const DEFAULT_SANDBOX_USERS = { first: { uid: 60_000, gid: 65_534 }, count: 256 } as const;

/** The first sandbox user when this process is root, so tasks are never the host's root; else undefined (the process's own user). */
export function defaultSandboxUser(): { uid: number; gid: number } | undefined {
  return process.getuid?.() === 0 ? DEFAULT_SANDBOX_USERS.first : undefined;
}

function compileSandboxUsers(
  user: SandboxUser | undefined,
  count: number | undefined,
): SandboxUser | SandboxUsers | undefined {
  const first = user ?? defaultSandboxUser();
  if (first === undefined) {
    if ((count ?? 1) > 1) {
      throw new InvalidOptionError(
        `Expected \`sandboxUsers\` only on a node running as root (only root starts sandboxes as other users), got ${count}`,
      );
    }
    return undefined;
  }
  const users = count ?? (user === undefined ? DEFAULT_SANDBOX_USERS.count : 1);
  return users === 1 ? first : new SandboxUsers(first, users);
}

/**
 * Root: `/var/cache/tydra/packages` (the sandbox user must reach it, and `/root` is private);
 * anyone else: `~/.cache/tydra/packages`.
 */
function defaultCacheDir(): string {
  return process.getuid?.() === 0 ? '/var/cache/tydra/packages' : join(homedir(), '.cache', 'tydra', 'packages');
}

/** `<hostname>-<pid>`, reduced to the characters a BullMQ queue name and our ids allow. */
export function defaultNodeId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '') || 'node';
  return `${host}-${process.pid}`;
}
