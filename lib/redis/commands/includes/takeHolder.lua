--[[
  Takes a TaskInstance's reference on one package version, atomically with the check that the
  version can still be used (the body of `take-ref-6.lua`, shared with `resolve-version-5.lua`,
  which resolves and references in one step). A prune runs as one script too, so it sees either
  no holder (and this then finds the version gone) or the holder (and keeps the version).
  Idempotent: taking a reference the instance already holds changes nothing.

  Returns 1 when the reference is held, 0 when there is no such version (never deployed, or
  pruned) and -1 when it was undeployed (unless `acceptUndeployed` is '1'); 0 and -1 change nothing.
]]
local function takeHolder(versionsKey, holdersKey, refsKey, undeployedKey, blobKey, idleKey,
                          sha1, instanceId, now, ref, acceptUndeployed)
  if redis.call('HEXISTS', versionsKey, sha1) == 0 or redis.call('EXISTS', blobKey) == 0 then
    return 0
  end
  local held = redis.call('ZSCORE', holdersKey, instanceId)
  if not held and acceptUndeployed ~= '1' and redis.call('SISMEMBER', undeployedKey, sha1) == 1 then
    return -1
  end
  redis.call('ZADD', holdersKey, 'NX', now, instanceId)
  redis.call('HSET', refsKey, instanceId, ref)
  redis.call('HDEL', idleKey, sha1)
  return 1
end
