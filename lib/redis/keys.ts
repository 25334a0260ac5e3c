/**
 * Every Redis key and pub/sub channel of one namespace (`lib/core/namespace.ts`), BullMQ's
 * included: each starts with the hash tag `{NAME}`, so a namespace is one hash slot of a Redis
 * Cluster (every Lua script's keys and every BullMQ flow then share it) and two namespaces on one
 * Redis never see each other. A component builds its {@link Keyspace} once, from its `namespace`
 * option, and passes it to whatever names keys. The README's key schema table lists the same
 * keys; `test/lib/redis/keys.test.ts` fails when one of them is missing there.
 *
 *     {NAME}:packages                        tydra's keys
 *     {NAME}:pkg:<name>:<sha1>               package tarballs
 *     {NAME}:bull:<queue>:…                  BullMQ's keys (its queue prefix is `{NAME}:bull`)
 */
import { InvalidOptionError } from '../core/errors.js';
import { DEFAULT_NAMESPACE, MAX_NAMESPACE_LENGTH, NAMESPACE_PATTERN } from '../core/namespace.js';

export class Keyspace {
  /** The hash tag every key starts with: `{NAME}`. */
  readonly tag: string;
  /** BullMQ's `prefix` option for every Queue, Worker and QueueEvents of the namespace: `{NAME}:bull`. */
  readonly bullPrefix: string;

  /** ZSET of package names, scored by their last deploy time (ms). */
  readonly packages: string;
  /** ZSET of node ids, scored by their last heartbeat, or by when they stopped (ms). */
  readonly nodes: string;
  /** HASH TaskInstance id → `name@sha1` it holds, so a release needs only the id. */
  readonly refs: string;
  /** Pub/sub channel: a message (a TaskInstance id) asks the node running it to kill it now. */
  readonly cancelChannel: string;
  /**
   * ZSET of TaskInstance ids cancelled before they started (their jobs removed), scored by submit
   * time (ms), for `runs()`; the newest 10,000 are kept, and an id whose cancel request expired is dropped.
   */
  readonly cancelledUnstarted: string;
  /** Pub/sub channel: a message (a TaskInstance id) tells every node to stop that instance's workunits. */
  readonly parallelAbortChannel: string;
  /** HASH secret name → its sealed value (AES-256-GCM, base64; see `lib/core/secret-box.ts`). Never a clear value. */
  readonly secrets: string;
  /** HASH secret name → when it was last set (ms), for `tydra secret ls`. */
  readonly secretsSetAt: string;

  /** Throws an `InvalidOptionError` for a namespace that is not 1 to 32 of `a-z 0-9 _ -`. */
  constructor(readonly namespace: string) {
    if (namespace.length > MAX_NAMESPACE_LENGTH || !NAMESPACE_PATTERN.test(namespace)) {
      throw new InvalidOptionError(
        `Expected the namespace to be 1 to ${MAX_NAMESPACE_LENGTH} of a-z 0-9 _ -, got ${JSON.stringify(namespace)}`,
      );
    }
    this.tag = `{${namespace}}`;
    this.bullPrefix = `${this.tag}:bull`;
    this.packages = `${this.tag}:packages`;
    this.nodes = `${this.tag}:nodes`;
    this.refs = `${this.tag}:refs`;
    this.cancelChannel = `${this.tag}:cancel`;
    this.cancelledUnstarted = `${this.tag}:cancelled-unstarted`;
    this.parallelAbortChannel = `${this.tag}:par-abort`;
    this.secrets = `${this.tag}:secrets`;
    this.secretsSetAt = `${this.tag}:secrets:set-at`;
  }

  /** Tarball bytes of one package version: `{NAME}:pkg:<name>:<sha1>`. */
  packageBlob(name: string, sha1: string): string {
    return `${this.tag}:pkg:${name}:${sha1}`;
  }

  /** HASH sha1 → JSON {@link PackageVersion} of every version of one package. */
  packageVersions(name: string): string {
    return `${this.tag}:package:${name}:versions`;
  }

  /** STRING: the sha1 that `name/task` (no pin) resolves to. */
  packageLatest(name: string): string {
    return `${this.tag}:package:${name}:latest`;
  }

  /** ZSET of TaskInstance ids holding one version, scored by when each took its reference (ms). */
  packageHolders(name: string, sha1: string): string {
    return `${this.tag}:package:${name}:holders:${sha1}`;
  }

  /** STRING with a TTL: a deploy's short hold on the version it just uploaded. */
  packageLease(name: string, sha1: string): string {
    return `${this.tag}:package:${name}:lease:${sha1}`;
  }

  /** HASH sha1 → when the version's last holder let go (ms); absent while held or never held. */
  packageIdle(name: string): string {
    return `${this.tag}:package:${name}:idle`;
  }

  /** SET of sha1s removed from use by `undeploy`: never resolved or submitted again. */
  packageUndeployed(name: string): string {
    return `${this.tag}:package:${name}:undeployed`;
  }

  /** STRING being filled by a deploy in 1 MiB APPENDs, renamed onto the blob key when complete. */
  upload(uploadId: string): string {
    return `${this.tag}:upload:${uploadId}`;
  }

  /** HASH describing one node (concurrency, host, pid, start time, heartbeat and lock periods, state). */
  nodeInfo(nodeId: string): string {
    return `${this.tag}:node:${nodeId}`;
  }

  /** STRING held (with a TTL) by the master sweeping a dead node's queue. */
  sweepLock(nodeId: string): string {
    return `${this.tag}:sweep:${nodeId}`;
  }

  /**
   * HASH {node, dispatchAt, ran, at}, with a TTL: the sweeper took the TaskInstance's node job back
   * from a node that is gone; the next dispatch reads it, counts the loss if `ran`, and deletes it.
   */
  takenBack(instanceId: string): string {
    return `${this.tag}:taken-back:${instanceId}`;
  }

  /**
   * STRING JSON {ref, at, submittedAt, rerunOf?, sequenceId?}, with a TTL: the TaskInstance was
   * asked to stop. Checked before every step.
   */
  cancel(instanceId: string): string {
    return `${this.tag}:cancel:${instanceId}`;
  }

  /**
   * HASH: the state of one parallel TaskInstance: `meta` (JSON: package, task, limits, attempts,
   * maxFailedWorkunits, owner node queue), counters `enqueued`, `total`, `done`, `failed`, `running`,
   * `splitDone`, and `abort` (JSON reason) once it must stop; `ended` and `value` (reduce's JSON
   * value, for a coordinator that runs again) once it ends. Expires a while after it ends.
   */
  parallelState(instanceId: string): string {
    return `${this.tag}:par:${instanceId}`;
  }

  /** HASH unit index → JSON result (`null` for a unit that failed for good). Read in pages by reduce. */
  parallelResults(instanceId: string): string {
    return `${this.tag}:par:${instanceId}:results`;
  }

  /** HASH unit index → JSON {message, stack?} of units that failed for good. */
  parallelFailures(instanceId: string): string {
    return `${this.tag}:par:${instanceId}:failures`;
  }

  /** SET of the batch job ids of one instance not yet ended, so a cancel can remove the waiting ones. */
  parallelBatches(instanceId: string): string {
    return `${this.tag}:par:${instanceId}:batches`;
  }

  /**
   * STRING with a TTL (the client's idempotency window): the TaskInstance id that the first submit
   * with idempotency key `key` of `pkg/task` created. Claimed with SET NX before the enqueue.
   */
  idempotency(pkg: string, task: string, key: string): string {
    return `${this.tag}:idem:${pkg}:${task}:${key}`;
  }

  /** BullMQ's key `suffix` of a queue (`wait`, `active`, a job id, …), as its scripts expect it. */
  queueKey(queue: string, suffix: string): string {
    return `${this.bullPrefix}:${queue}:${suffix}`;
  }

  /** BullMQ's hash of one job (the TaskInstance's, in `tasks`), read by the prune job's audit. */
  taskJob(queue: string, instanceId: string): string {
    return this.queueKey(queue, instanceId);
  }
}

/** The keys of `namespace` (default `tydra`); throws an `InvalidOptionError` for an invalid one. */
export function createKeys(namespace: string = DEFAULT_NAMESPACE): Keyspace {
  return new Keyspace(namespace);
}
