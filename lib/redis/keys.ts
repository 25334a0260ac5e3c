/**
 * Every Redis key tydra writes outside BullMQ's own `bull:<queue>:*` keys. The README's key
 * schema table is generated from the same names; change both together.
 */

/** Tarball bytes of one package version: exactly `pkg:<name>:<sha1>`. */
export const packageBlobKey = (name: string, sha1: string): string => `pkg:${name}:${sha1}`;

/** ZSET of package names, scored by their last deploy time (ms). */
export const packagesKey = 'tydra:packages';

/** HASH sha1 → JSON {@link PackageVersion} of every version of one package. */
export const packageVersionsKey = (name: string): string => `tydra:package:${name}:versions`;

/** STRING: the sha1 that `name/task` (no pin) resolves to. */
export const packageLatestKey = (name: string): string => `tydra:package:${name}:latest`;

/** STRING being filled by a deploy in 1 MiB APPENDs, renamed onto the blob key when complete. */
export const uploadKey = (uploadId: string): string => `tydra:upload:${uploadId}`;

/** ZSET of node ids, scored by their last heartbeat, or by when they stopped (ms). */
export const nodesKey = 'tydra:nodes';

/** HASH describing one node (concurrency, host, pid, start time, heartbeat and lock periods, state). */
export const nodeInfoKey = (nodeId: string): string => `tydra:node:${nodeId}`;

/** STRING held (with a TTL) by the master sweeping a dead node's queue. */
export const sweepLockKey = (nodeId: string): string => `tydra:sweep:${nodeId}`;

/**
 * HASH {node, dispatchAt, ran, at}, with a TTL: the sweeper took the TaskInstance's node job back
 * from a node that is gone; the next dispatch reads it, counts the loss if `ran`, and deletes it.
 */
export const takenBackKey = (instanceId: string): string => `tydra:taken-back:${instanceId}`;

/** ZSET of TaskInstance ids holding one version, scored by when each took its reference (ms). */
export const packageHoldersKey = (name: string, sha1: string): string => `tydra:package:${name}:holders:${sha1}`;

/** STRING with a TTL: a deploy's short hold on the version it just uploaded. */
export const packageLeaseKey = (name: string, sha1: string): string => `tydra:package:${name}:lease:${sha1}`;

/** HASH sha1 → when the version's last holder let go (ms); absent while held or never held. */
export const packageIdleKey = (name: string): string => `tydra:package:${name}:idle`;

/** SET of sha1s removed from use by `undeploy`: never resolved or submitted again. */
export const packageUndeployedKey = (name: string): string => `tydra:package:${name}:undeployed`;

/** HASH TaskInstance id → `name@sha1` it holds, so a release needs only the id. */
export const refsKey = 'tydra:refs';

/** BullMQ's hash of one TaskInstance job (default `bull` prefix), read by the prune job's audit. */
export const taskJobKey = (queue: string, instanceId: string): string => `bull:${queue}:${instanceId}`;

/** STRING JSON {ref, at}, with a TTL: the TaskInstance was asked to stop. Checked before every step. */
export const cancelKey = (instanceId: string): string => `tydra:cancel:${instanceId}`;

/** Pub/sub channel: a message (a TaskInstance id) asks the node running it to kill it now. */
export const cancelChannel = 'tydra:cancel';

/**
 * HASH: the state of one parallel TaskInstance: `meta` (JSON: package, task, limits, attempts,
 * maxFailedWorkunits, owner node queue), counters `enqueued`, `total`, `done`, `failed`, `running`,
 * `splitDone`, and `abort` (JSON reason) once it must stop. Expires a while after it ends.
 */
export const parallelStateKey = (instanceId: string): string => `tydra:par:${instanceId}`;

/** HASH unit index → JSON result (`null` for a unit that failed for good). Read in pages by reduce. */
export const parallelResultsKey = (instanceId: string): string => `tydra:par:${instanceId}:results`;

/** HASH unit index → JSON {message, stack?} of units that failed for good. */
export const parallelFailuresKey = (instanceId: string): string => `tydra:par:${instanceId}:failures`;

/** SET of the batch job ids of one instance not yet ended, so a cancel can remove the waiting ones. */
export const parallelBatchesKey = (instanceId: string): string => `tydra:par:${instanceId}:batches`;

/** Pub/sub channel: a message (a TaskInstance id) tells every node to stop that instance's workunits. */
export const parallelAbortChannel = 'tydra:par-abort';

/**
 * STRING with a TTL (the client's idempotency window): the TaskInstance id that the first submit
 * with idempotency key `key` of `pkg/task` created. Claimed with SET NX before the enqueue.
 */
export const idempotencyKey = (pkg: string, task: string, key: string): string => `tydra:idem:${pkg}:${task}:${key}`;

/** HASH secret name → its sealed value (AES-256-GCM, base64; see `lib/core/secret-box.ts`). Never a clear value. */
export const secretsKey = 'tydra:secrets';

/** HASH secret name → when it was last set (ms), for `tydra secret ls`. */
export const secretsSetAtKey = 'tydra:secrets:set-at';
