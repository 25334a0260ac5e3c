--[[
  Releases a TaskInstance's reference on one package version (the body of `release-ref-3.lua`,
  shared with `read-settled-5.lua`, which releases in the same step as it reads the child's value).
  Idempotent: a second release finds no holder and changes nothing, so a count (the holders set's
  size) can never go below zero or be released twice. When the last holder goes, the version's
  idle time starts: the prune job's grace period is measured from it.

  Returns 1 when released, 0 when the instance held no reference on this version.
]]
local function releaseHolder(holdersKey, refsKey, idleKey, instanceId, sha1, now)
  redis.call('HDEL', refsKey, instanceId)
  if redis.call('ZREM', holdersKey, instanceId) == 0 then
    return 0
  end
  if redis.call('ZCARD', holdersKey) == 0 then
    redis.call('HSET', idleKey, sha1, now)
  end
  return 1
end
