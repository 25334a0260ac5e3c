/**
 * When a JavaScript sandbox may exit. Its runner, once it sent its final message, holds in a
 * blocking read of fd 3 until the node closes its end (`runner/channel.ts`). An exit is several
 * milliseconds of kernel work: the Node process, then bwrap's namespaces and mounts. Let go at
 * once, that work competes on a small machine with what the node does with the result next
 * (the node job's completion in Redis, the master's settle). So a caller may name what to wait
 * for first (`exitAfter`); the hold never outlasts {@link MAX_EXIT_HOLD_MS}, whatever it named.
 *
 * Only the exit waits: the TaskInstance is settled at the final message, its slot is free, and
 * its cgroup and rlimits still apply until the sandbox is gone. The hold blocks the runner's main
 * thread, so none of the task's code runs there; worker threads a task started run on until the
 * exit, as they did for the moment the exit took before: a few milliseconds when the node's
 * Redis answers, at most the cap when it does not.
 *
 * The exit itself is the runner's to do, and the runner runs beside the task's code: a task can
 * disable `process.exit`, or write a final message of its own on fd 3 and go on running. Nothing
 * else would then end a sandbox whose TaskInstance is settled (a pooled one has no timer left, a
 * cold one only its timeout, up to a day), outside the node's slots. So a sandbox that has not
 * exited {@link EXIT_GRACE_MS} after it was let go is stopped: a runner that does its part is gone
 * in milliseconds.
 */
import { Duplex, type Readable } from 'node:stream';

/** The longest a runner is held after its final message, should the caller's word never come. */
export const MAX_EXIT_HOLD_MS = 2000;
/** How long a sandbox let go may take to exit before it is stopped (see above). */
export const EXIT_GRACE_MS = 2000;

/** Sets what the sandbox's exit waits for; only a call before the final message is read counts. */
export type ExitAfter = (when: Promise<unknown>) => void;

/**
 * Lets the runner on `protocol` go once `final` resolved (its final message arrived) and then
 * `after` (or what {@link ExitAfter} named since) settled, or the hold's cap passed, or the
 * sandbox exited anyway; calls `overstay` if it has not exited {@link EXIT_GRACE_MS} later.
 */
export function holdExit(
  protocol: Readable | undefined,
  final: Promise<void>,
  exited: Promise<void>,
  overstay: () => void,
  after: Promise<unknown> = Promise.resolve(),
): ExitAfter {
  let gone = false;
  let letGone = false;
  void exited.then(() => (gone = true));
  const letGo = (): void => {
    if (letGone) {
      return;
    }
    letGone = true;
    // A half-close: what the runner still writes is read to the end.
    if (protocol instanceof Duplex && !protocol.writableEnded && !protocol.destroyed) {
      protocol.end();
    }
    if (!gone) {
      const grace = setTimeout(overstay, EXIT_GRACE_MS).unref();
      void exited.then(() => clearTimeout(grace));
    }
  };
  void final.then(() => {
    const cap = setTimeout(letGo, MAX_EXIT_HOLD_MS).unref();
    const done = (): void => {
      clearTimeout(cap);
      letGo();
    };
    void Promise.race([after, exited]).then(done, done);
  });
  return (when) => {
    after = when;
  };
}
