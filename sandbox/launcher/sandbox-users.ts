/**
 * The host users sandboxes run as, one per live sandbox where there are enough. The kernel counts
 * some resources per host user, whatever the namespaces: inotify instances and watches, fanotify
 * groups, queued signals, pipe buffer pages, POSIX message queue bytes, the key quota. Were every
 * sandbox the same host user, one task could use one of them up and break the tasks beside it
 * (`fs.watch` failing with EMFILE, say) until it ends; with a user of its own, it only hurts
 * itself. isolate and Piston give each box a uid for the same reason.
 *
 * Inside, every sandbox is uid 65534 (bwrap maps it to the host user that starts it). The users
 * are `count` consecutive uids from `first.uid`, all with `first.gid`: files a sandbox must read
 * (the package cache, the runtime) are the node's, readable by anyone, so no group is needed.
 * Each sandbox takes the user the fewest live sandboxes hold (the lowest uid among them), so when
 * there are more sandboxes than users, they share as evenly as they can; a user is given back
 * when nothing of its sandbox is left (its processes and cgroup gone).
 */
import { InvalidOptionError } from '../../lib/core/errors.js';

export interface SandboxUser {
  readonly uid: number;
  readonly gid: number;
}

/** A user taken for one sandbox; `release` gives it back (idempotent). */
export interface HeldSandboxUser {
  readonly user: SandboxUser;
  release(): void;
}

/** uids are 32 bits; (uid_t) -1 means "unchanged" to the kernel's set*id calls. */
const MAX_UID = 2 ** 32 - 2;

export class SandboxUsers {
  readonly #holders: number[];

  constructor(
    readonly first: SandboxUser,
    readonly count: number,
  ) {
    if (!Number.isSafeInteger(count) || count < 1 || count > 65_536) {
      throw new InvalidOptionError(
        `Expected the number of sandbox users to be an integer from 1 to 65536, got ${count}`,
      );
    }
    if (first.uid + count - 1 > MAX_UID) {
      throw new InvalidOptionError(
        `Expected the sandbox users ${first.uid} to ${first.uid + count - 1} to be uids up to ${MAX_UID}, got one above`,
      );
    }
    if (first.uid === 0 && count > 1) {
      throw new InvalidOptionError(`Expected one sandbox user when it is root (uid 0), got ${count}`);
    }
    this.#holders = new Array<number>(count).fill(0);
  }

  /** The user the fewest live sandboxes hold, until its `release`. */
  take(): HeldSandboxUser {
    let index = 0;
    for (let i = 1; i < this.#holders.length && this.#holders[index] !== 0; i += 1) {
      if ((this.#holders[i] ?? 0) < (this.#holders[index] ?? 0)) {
        index = i;
      }
    }
    this.#holders[index] = (this.#holders[index] ?? 0) + 1;
    let held = true;
    return {
      user: { uid: this.first.uid + index, gid: this.first.gid },
      release: () => {
        if (held) {
          held = false;
          this.#holders[index] = (this.#holders[index] ?? 1) - 1;
        }
      },
    };
  }

  /** How many live sandboxes hold each user, by uid order. */
  holders(): readonly number[] {
    return [...this.#holders];
  }
}

/** A user for one sandbox from what a node was given: the one user, or one of its users. */
export function takeSandboxUser(users: SandboxUser | SandboxUsers | undefined): HeldSandboxUser | undefined {
  if (users === undefined) {
    return undefined;
  }
  return users instanceof SandboxUsers ? users.take() : { user: users, release: () => undefined };
}

/** The first user (the one a node checks bubblewrap and its cache with). */
export function firstSandboxUser(users: SandboxUser | SandboxUsers | undefined): SandboxUser | undefined {
  return users instanceof SandboxUsers ? users.first : users;
}
