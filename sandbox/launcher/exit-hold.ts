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
 */
import { Duplex, type Readable } from 'node:stream';

/** The longest a runner is held after its final message, should the caller's word never come. */
export const MAX_EXIT_HOLD_MS = 2000;

/** Sets what the sandbox's exit waits for; only a call before the final message is read counts. */
export type ExitAfter = (when: Promise<unknown>) => void;

/**
 * Lets the runner on `protocol` go once `final` resolved (its final message arrived) and then
 * `after` (or what {@link ExitAfter} named since) settled, or the hold's cap passed, or the
 * sandbox exited anyway.
 */
export function holdExit(
  protocol: Readable | undefined,
  final: Promise<void>,
  exited: Promise<void>,
  after: Promise<unknown> = Promise.resolve(),
): ExitAfter {
  const letGo = (): void => {
    // A half-close: what the runner still writes is read to the end.
    if (protocol instanceof Duplex && !protocol.writableEnded && !protocol.destroyed) {
      protocol.end();
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
