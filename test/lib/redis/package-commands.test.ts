import assert from 'node:assert/strict';

import type { Redis } from 'ioredis';

import {
  commitDeploy,
  CommitDeployStatus,
  pruneVersion,
  pruneVersions,
  releaseRef,
  ReleaseRefStatus,
  resolveVersion,
  takeRef,
  TakeRefStatus,
  undeploy,
  UndeployStatus,
} from '../../../lib/redis/package-commands.js';
import { createKeys } from '../../../lib/redis/keys.js';
import { testRedis } from '../../helpers.js';

const keys = createKeys();

const SHA_A = 'a'.repeat(40);
const SHA_B = 'b'.repeat(40);

/** Uploads `bytes` and commits them as `pkg@sha1` (deployed at `now`, with a lease of `leaseMs`). */
async function deployed(redis: Redis, sha1: string, now: number, leaseMs = 60_000): Promise<CommitDeployStatus> {
  const uploadId = `upload-${sha1.slice(0, 4)}-${now}`;
  await redis.set(keys.upload(uploadId), `bytes of ${sha1}`);
  const versionJson = JSON.stringify({ name: 'pkg', sha1, size: 1, deployedAt: now, manifest: {} });
  return commitDeploy(redis, keys, { name: 'pkg', sha1, uploadId, versionJson, now, leaseMs });
}

describe('typed package script wrappers (@integration)', () => {
  it('commitDeploy: Stored, then AlreadyStored for the same content, UploadMissing without an upload', async () => {
    const redis = testRedis();
    assert.equal(await deployed(redis, SHA_A, 1000), CommitDeployStatus.Stored);
    assert.equal(await redis.get(`{tydra}:pkg:pkg:${SHA_A}`), `bytes of ${SHA_A}`);
    assert.equal(await redis.get('{tydra}:package:pkg:latest'), SHA_A);
    assert.equal(await deployed(redis, SHA_A, 2000), CommitDeployStatus.AlreadyStored);
    const args = { name: 'pkg', sha1: SHA_B, uploadId: 'never-uploaded', versionJson: '{}', now: 1, leaseMs: 1 };
    assert.equal(await commitDeploy(redis, keys, args), CommitDeployStatus.UploadMissing);
    assert.equal(await redis.hexists('{tydra}:package:pkg:versions', SHA_B), 0);
  });

  it('takeRef: Held (idempotent), Missing for an unknown version, Undeployed unless already held', async () => {
    const redis = testRedis();
    await deployed(redis, SHA_A, 1000);
    const args = { name: 'pkg', sha1: SHA_A, instanceId: 'i1', now: 5000, alreadyHeld: false };
    assert.equal(await takeRef(redis, keys, args), TakeRefStatus.Held);
    assert.equal(await takeRef(redis, keys, args), TakeRefStatus.Held);
    assert.deepEqual(await redis.zrange(`{tydra}:package:pkg:holders:${SHA_A}`, 0, -1), ['i1']);
    assert.equal(await redis.hget('{tydra}:refs', 'i1'), `pkg@${SHA_A}`);
    assert.equal(await takeRef(redis, keys, { ...args, sha1: SHA_B }), TakeRefStatus.Missing);
    await undeploy(redis, keys, { name: 'pkg', sha1: SHA_A });
    assert.equal(await takeRef(redis, keys, { ...args, instanceId: 'i2' }), TakeRefStatus.Undeployed);
    assert.equal(await takeRef(redis, keys, { ...args, instanceId: 'i2', alreadyHeld: true }), TakeRefStatus.Held);
  });

  it('resolveVersion: latest or a given sha1 with its record and undeployed mark, nulls for what is missing', async () => {
    const redis = testRedis();
    assert.deepEqual(await resolveVersion(redis, keys, { name: 'pkg', sha1: undefined }), {
      sha1: null,
      json: null,
      undeployed: false,
      referenced: false,
    });
    await deployed(redis, SHA_A, 1000);
    await deployed(redis, SHA_B, 2000);
    const latest = await resolveVersion(redis, keys, { name: 'pkg', sha1: undefined });
    assert.equal(latest.sha1, SHA_B);
    assert.equal((JSON.parse(latest.json ?? '{}') as { deployedAt?: number }).deployedAt, 2000);
    assert.equal(latest.undeployed, false);
    await undeploy(redis, keys, { name: 'pkg', sha1: SHA_A });
    const old = await resolveVersion(redis, keys, { name: 'pkg', sha1: SHA_A });
    assert.equal(old.sha1, SHA_A);
    assert.equal((JSON.parse(old.json ?? '{}') as { sha1?: string }).sha1, SHA_A);
    assert.equal(old.undeployed, true);
    assert.deepEqual(await resolveVersion(redis, keys, { name: 'pkg', sha1: 'c'.repeat(40) }), {
      sha1: 'c'.repeat(40),
      json: null,
      undeployed: false,
      referenced: false,
    });
    assert.equal(await redis.hlen('{tydra}:refs'), 0, 'a resolve without an instance id only reads');
  });

  it('resolveVersion with referenceFor: the reference taken in the same step, never on an undeployed or vanished version', async () => {
    const redis = testRedis();
    await deployed(redis, SHA_A, 1000);
    await deployed(redis, SHA_B, 2000);
    const latest = await resolveVersion(redis, keys, { name: 'pkg', sha1: undefined, referenceFor: 'i1', now: 3000 });
    assert.equal(latest.sha1, SHA_B);
    assert.equal(latest.referenced, true);
    assert.deepEqual(await redis.zrange(`{tydra}:package:pkg:holders:${SHA_B}`, 0, -1, 'WITHSCORES'), ['i1', '3000']);
    assert.equal(await redis.hget('{tydra}:refs', 'i1'), `pkg@${SHA_B}`);
    await undeploy(redis, keys, { name: 'pkg', sha1: SHA_A });
    const undeployed = await resolveVersion(redis, keys, { name: 'pkg', sha1: SHA_A, referenceFor: 'i2', now: 3000 });
    assert.deepEqual([undeployed.undeployed, undeployed.referenced], [true, false]);
    assert.equal(await redis.exists(`{tydra}:package:pkg:holders:${SHA_A}`), 0);
    // A record whose tarball is gone (a prune taking the version away) gets no holder.
    await redis.del(`{tydra}:pkg:pkg:${SHA_B}`);
    const vanished = await resolveVersion(redis, keys, { name: 'pkg', sha1: undefined, referenceFor: 'i3', now: 3000 });
    assert.deepEqual([vanished.sha1, vanished.referenced], [SHA_B, false]);
    assert.deepEqual(await redis.hkeys('{tydra}:refs'), ['i1']);
  });

  it('releaseRef: Released once, then NotHeld; the last release starts the idle time', async () => {
    const redis = testRedis();
    await deployed(redis, SHA_A, 1000);
    await takeRef(redis, keys, { name: 'pkg', sha1: SHA_A, instanceId: 'i1', now: 2000, alreadyHeld: false });
    const args = { name: 'pkg', sha1: SHA_A, instanceId: 'i1', now: 3000 };
    assert.equal(await releaseRef(redis, keys, args), ReleaseRefStatus.Released);
    assert.equal(await redis.hget('{tydra}:package:pkg:idle', SHA_A), '3000');
    assert.equal(await releaseRef(redis, keys, args), ReleaseRefStatus.NotHeld);
    assert.equal(await redis.hlen('{tydra}:refs'), 0);
  });

  it('undeploy: Undeployed with the new latest, NotFound for an unknown version or package', async () => {
    const redis = testRedis();
    await deployed(redis, SHA_A, 1000);
    await deployed(redis, SHA_B, 2000);
    assert.deepEqual(await undeploy(redis, keys, { name: 'pkg', sha1: SHA_B }), {
      status: UndeployStatus.Undeployed,
      undeployed: 1,
      latest: SHA_A,
    });
    assert.deepEqual(await undeploy(redis, keys, { name: 'pkg', sha1: undefined }), {
      status: UndeployStatus.Undeployed,
      undeployed: 1,
      latest: null,
    });
    assert.equal((await undeploy(redis, keys, { name: 'pkg', sha1: 'c'.repeat(40) })).status, UndeployStatus.NotFound);
    assert.equal((await undeploy(redis, keys, { name: 'nope', sha1: undefined })).status, UndeployStatus.NotFound);
  });

  it('pruneVersion: latest, leased, held, grace, eligible (dry run), removed, gone', async () => {
    const redis = testRedis();
    const now = Date.now();
    await deployed(redis, SHA_A, now - 10_000);
    // Its lease gone by hand, not by a 1 ms expiry a fast machine may not have reached yet.
    await redis.del(`{tydra}:package:pkg:lease:${SHA_A}`);
    await deployed(redis, SHA_B, now, 60_000);
    const args = { name: 'pkg', now, graceMs: 5000, dryRun: false };
    assert.equal((await pruneVersion(redis, keys, { ...args, sha1: SHA_B })).verdict, 'leased');
    await redis.del(`{tydra}:package:pkg:lease:${SHA_B}`);
    assert.deepEqual(await pruneVersion(redis, keys, { ...args, sha1: SHA_B }), {
      verdict: 'latest',
      detail: 0,
      undeployed: false,
    });
    await takeRef(redis, keys, { name: 'pkg', sha1: SHA_A, instanceId: 'i1', now, alreadyHeld: false });
    assert.deepEqual(await pruneVersion(redis, keys, { ...args, sha1: SHA_A }), {
      verdict: 'held',
      detail: 1,
      undeployed: false,
    });
    await releaseRef(redis, keys, { name: 'pkg', sha1: SHA_A, instanceId: 'i1', now: now - 1000 });
    assert.deepEqual(await pruneVersion(redis, keys, { ...args, sha1: SHA_A }), {
      verdict: 'grace',
      detail: now - 1000,
      undeployed: false,
    });
    const late = { ...args, sha1: SHA_A, now: now + 10_000 };
    assert.equal((await pruneVersion(redis, keys, { ...late, dryRun: true })).verdict, 'eligible');
    assert.equal(await redis.exists(`{tydra}:pkg:pkg:${SHA_A}`), 1, 'a dry run changes nothing');
    assert.deepEqual(await pruneVersion(redis, keys, late), {
      verdict: 'removed',
      detail: now - 1000,
      undeployed: false,
    });
    assert.equal(await redis.exists(`{tydra}:pkg:pkg:${SHA_A}`), 0);
    assert.equal((await pruneVersion(redis, keys, late)).verdict, 'gone');
  });

  it('pruneVersions: one pipeline, replies in order; an undeployed version is removed at once', async () => {
    const redis = testRedis();
    const now = Date.now();
    await deployed(redis, SHA_A, now);
    await deployed(redis, SHA_B, now);
    await undeploy(redis, keys, { name: 'pkg', sha1: SHA_A });
    const replies = await pruneVersions(
      redis,
      keys,
      [SHA_A, SHA_B, 'c'.repeat(40)].map((sha1) => ({ name: 'pkg', sha1, now, graceMs: 60_000, dryRun: false })),
    );
    assert.deepEqual(
      replies.map((reply) => [reply.verdict, reply.undeployed]),
      [
        ['removed', true],
        ['leased', false],
        ['gone', false],
      ],
    );
  });
});
