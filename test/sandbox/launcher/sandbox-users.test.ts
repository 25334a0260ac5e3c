import assert from 'node:assert/strict';

import { InvalidOptionError } from '../../../lib/core/errors.js';
import { firstSandboxUser, SandboxUsers, takeSandboxUser } from '../../../sandbox/launcher/sandbox-users.js';

describe('SandboxUsers', () => {
  it('gives each live sandbox a user of its own, lowest uid first, all with the one gid', () => {
    const users = new SandboxUsers({ uid: 60_000, gid: 65_534 }, 3);
    const taken = [users.take(), users.take(), users.take()];
    assert.deepEqual(
      taken.map((held) => held.user),
      [
        { uid: 60_000, gid: 65_534 },
        { uid: 60_001, gid: 65_534 },
        { uid: 60_002, gid: 65_534 },
      ],
    );
    taken[1]?.release();
    assert.deepEqual(users.take().user, { uid: 60_001, gid: 65_534 }, 'a user given back is taken again');
  });

  it('shares users as evenly as it can once every one is held, and counts a release once', () => {
    const users = new SandboxUsers({ uid: 100, gid: 100 }, 2);
    const held = Array.from({ length: 5 }, () => users.take());
    assert.deepEqual(
      held.map((h) => h.user.uid),
      [100, 101, 100, 101, 100],
    );
    assert.deepEqual(users.holders(), [3, 2]);
    held[0]?.release();
    held[0]?.release();
    assert.deepEqual(users.holders(), [2, 2], 'a second release of the same sandbox changes nothing');
    held[2]?.release();
    assert.equal(users.take().user.uid, 100, 'the least held one');
  });

  it('refuses a count out of range, uids past 2^32 - 2, and more than one user when the first is root', () => {
    for (const count of [0, 1.5, 65_537]) {
      assert.throws(() => new SandboxUsers({ uid: 60_000, gid: 1 }, count), InvalidOptionError);
    }
    assert.throws(() => new SandboxUsers({ uid: 2 ** 32 - 2, gid: 1 }, 2), /uids up to 4294967294/);
    assert.throws(() => new SandboxUsers({ uid: 0, gid: 0 }, 2), /one sandbox user when it is root/);
  });

  it('takeSandboxUser: one fixed user is shared by all and its release does nothing; none gives none', () => {
    const user = { uid: 65_534, gid: 65_534 };
    assert.equal(takeSandboxUser(user)?.user, user);
    assert.equal(takeSandboxUser(undefined), undefined);
    assert.equal(firstSandboxUser(new SandboxUsers(user, 4)), user);
    assert.equal(firstSandboxUser(user), user);
  });
});
