/**
 * Every error tydra throws on purpose. Each class says when it is thrown, sets `name`, keeps
 * `cause`, and carries the data a caller needs to act on it. Messages have a fixed shape:
 * what was expected, then what was received.
 */

const TYDRA_ERROR = Symbol.for('tydra.error');

/** Base class: `instanceof TydraError` also works across module copies (the symbol is global). */
export class TydraError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    Object.defineProperty(this, TYDRA_ERROR, { value: true });
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    if (this === TydraError) {
      return typeof value === 'object' && value !== null && TYDRA_ERROR in value;
    }
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** An option, CLI flag or argument failed validation. */
export class InvalidOptionError extends TydraError {}

/** `tydra.json` is missing or does not match the manifest schema. `field` names the culprit. */
export class ManifestError extends TydraError {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A package was refused at deploy or at extraction: nothing was stored or extracted. */
export class PackageRejectedError extends TydraError {}

/** A job's data does not match its queue's schema (anyone with Redis access can add jobs). */
export class InvalidJobDataError extends TydraError {}

/** A task reference (`name[@sha1]/task`) is malformed. */
export class InvalidTaskRefError extends TydraError {}

/** No deployed package, version or task matches a reference. */
export class UnknownTaskError extends TydraError {}

/** The stored tarball does not hash to the sha1 it is stored under. */
export class PackageIntegrityError extends TydraError {}

/**
 * A cached package version on a node no longer matches the marker written when it was extracted:
 * a file was changed, deleted or added, or a link or special file was planted. The node logs it,
 * removes the copy and fetches the version again; `path` names the first difference found.
 */
export class CacheCorruptError extends TydraError {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(message);
  }
}

/** No TaskInstance has this id (never existed, or removed by retention). */
export class TaskNotFoundError extends TydraError {
  constructor(readonly instanceId: string) {
    super(`Expected a TaskInstance with id ${instanceId}, found none (never submitted, or removed by retention)`);
  }
}

/** No node has this id in the registry (never registered, or forgotten after its retention period). */
export class NodeNotFoundError extends TydraError {
  constructor(readonly nodeId: string) {
    super(`Expected a registered node id (see \`tydra nodes\`), got \`${nodeId}\``);
  }
}

/**
 * The task ran and failed: it threw, exited non-zero, or timed out. `message` is the task's own
 * message; `remoteStack` is its stack (or the command's stderr tail).
 */
export class TaskFailedError extends TydraError {
  constructor(
    message: string,
    readonly instanceId: string,
    readonly remoteStack?: string,
  ) {
    super(message);
  }
}

/**
 * The task failed and said a retry cannot help: it called `ctx.fail(message)` or threw an error
 * named `TydraUnrecoverable`. Its node fails it for good, whatever `attempts` says.
 */
export class TaskUnrecoverableError extends TaskFailedError {}

/**
 * A submit's input does not match its task's `input` JSON Schema; nothing was enqueued. `field`
 * is the manifest field (`tasks.greet.input`), `path` the JSON path in the input (`/name`, or
 * `(root)`), `reason` what the schema asked (`must be string`).
 */
export class InputSchemaError extends TydraError {
  constructor(
    readonly field: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`Expected the input to match ${field}: ${path} ${reason}`);
  }
}

/**
 * The task ran, but its value does not match its `output` JSON Schema: the TaskInstance fails
 * for good (a retry would most likely return the same). Fields as in {@link InputSchemaError}.
 */
export class OutputSchemaError extends TaskUnrecoverableError {
  constructor(
    instanceId: string,
    readonly field: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`Expected the output to match ${field}: ${path} ${reason}`, instanceId);
  }
}

/**
 * The task broke one of its limits (memory, processes, CPU time, output…) and its whole process
 * tree was killed. The message names the limit and its value, e.g.
 * `memory limit exceeded (512 MiB)`.
 */
export class LimitExceededError extends TaskFailedError {
  constructor(
    message: string,
    instanceId: string,
    /** Which limit: `memoryBytes`, `pids`, `cpuMs`, `outputBytes`, `fileSizeBytes`… */
    readonly limit: string,
    readonly value: number,
  ) {
    super(message, instanceId);
  }
}

/**
 * The TaskInstance was cancelled on request (`tydra cancel`, `run.cancel()`). Also the abort
 * reason a node gives the run it kills on request. Whether a TaskInstance was cancelled is
 * recorded as its ending (`queues/task-ending.ts`), never read from a message.
 */
export class TaskCancelledError extends TaskFailedError {
  constructor(instanceId: string) {
    super(CANCELLED_MESSAGE, instanceId);
  }
}

/**
 * The message of a {@link TaskCancelledError}.
 * @deprecated A task may throw this very message: use `instanceof TaskCancelledError`, or the
 * `cancelled` state of `status()`, to tell a cancellation.
 */
export const CANCELLED_MESSAGE = 'cancelled by request';

/**
 * The abort reason of a run killed because its node is shutting down (the drain timeout passed).
 * Not the task's fault: the node parks the TaskInstance for the masters to re-route it.
 */
export class NodeShutdownError extends TydraError {
  constructor(readonly nodeId: string) {
    super(`node ${nodeId} is shutting down`);
  }
}

/**
 * The node, not the task, failed: the sandbox or its cgroup could not be set up. Reported as
 * such, retried a bounded number of times without using the task's attempts.
 */
export class InfrastructureError extends TydraError {}

/**
 * Redis did not answer within the connect timeout (`connectTimeoutMs`, `tydra --connect-timeout`):
 * the connect failed, or the connection was lost and did not come back in time. `target` is
 * `host:port (no password)` or `host:port (with password)`: never the password itself.
 */
export class RedisUnreachableError extends TydraError {
  constructor(
    readonly target: string,
    readonly reason: string,
  ) {
    super(`could not reach Redis at ${target}: ${reason}`);
  }
}

/**
 * A durable submit (`durableSubmit`, `tydra run --durable-submit`) stored the TaskInstance on the
 * primary, but fewer than `replicas` replicas acknowledged it within `timeoutMs`: should the
 * primary die now, a failover may lose it. It may still run: ask `tydra.run(instanceId).status()`
 * before submitting it again.
 */
export class SubmitNotReplicatedError extends TydraError {
  constructor(
    readonly instanceId: string,
    readonly replicas: number,
    readonly acknowledged: number,
    readonly timeoutMs: number,
  ) {
    super(
      `Expected ${replicas} Redis replica(s) to acknowledge TaskInstance ${instanceId} within ${timeoutMs} ms, ` +
        `got ${acknowledged}; it is on the primary and may still run (check its status before submitting it again)`,
    );
  }
}

/** bubblewrap is missing or cannot create a sandbox on this host; the node refuses to start. */
export class SandboxUnavailableError extends InfrastructureError {}

/**
 * A TaskInstance's cgroup could not be created, limited, filled or emptied: the kernel refused
 * a write under the cgroup mount, or processes survived every kill. `path` is the cgroup file or
 * folder concerned; `code` is the errno code when the kernel refused (`EBUSY`, `EACCES`…).
 */
export class CgroupError extends InfrastructureError {
  constructor(
    message: string,
    readonly path: string,
    readonly code?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A parallel TaskInstance's workunit is recorded as done, but its result is not in Redis when
 * reduce reads it: the results were deleted (the TaskInstance had ended) or lost (a Redis restart
 * without the last writes). Reduce is not run over a hole: its value would be wrong, not missing.
 * `index` is the unit's index in split order.
 */
export class ParallelResultMissingError extends TydraError {
  constructor(
    readonly instanceId: string,
    readonly index: number,
  ) {
    super(
      `Expected the result of workunit ${index} of parallel TaskInstance ${instanceId} (recorded as done), ` +
        'got no result: it was deleted or lost (a Redis restart?)',
    );
  }
}

/** The in-sandbox runner broke the node↔runner protocol (bad message, early exit). */
export class RunnerProtocolError extends TydraError {}

/**
 * The task exceeded its wall-clock limit and its whole process tree was killed. A
 * `TaskFailedError`, as a broken limit is: whoever catches a task's failure catches it too.
 * `instanceId` is empty where a launcher raises it without one (the node adds it to the ending).
 */
export class TaskTimeoutError extends TaskFailedError {
  constructor(
    readonly timeoutMs: number,
    instanceId = '',
  ) {
    super(`timed out after ${formatSeconds(timeoutMs)}`, instanceId);
  }
}

/** A state the code should never reach; it is a bug in tydra. */
export class IllegalStateError extends TydraError {
  constructor(what: string) {
    super(`internal error: ${what}; please file an issue`);
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Describes a received value for error messages: "`-1` (number)". @internal */
export function describe(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  if (text.length > 80) {
    text = `${text.slice(0, 77)}...`;
  }
  return `\`${text}\` (${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value})`;
}

/**
 * A secret key (`TYDRA_SECRET_KEY`, `--secret-key-file`, the `secretKey` options) is not 32
 * bytes in base64 or hex, or its file cannot be read. The message never holds the key.
 */
export class SecretKeyError extends InvalidOptionError {}

/** A submit names a secret that is not stored (`secret` names it), or a secret name is invalid. */
export class UnknownSecretError extends TydraError {
  constructor(
    message: string,
    readonly secret: string,
  ) {
    super(message);
  }
}

/**
 * A node cannot give a TaskInstance its secrets: it has no secret key, a secret is gone, or it
 * does not decrypt with the node's key. The TaskInstance is rejected, not retried.
 */
export class SecretUnavailableError extends TydraError {}
