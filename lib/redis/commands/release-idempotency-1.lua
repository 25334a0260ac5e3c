--[[
  Lets go of an idempotency key (`{NAME}:idem:<pkg>:<task>:<key>`) that a submit claimed but
  could not enqueue, only if it still names that submit's TaskInstance: a key that expired and
  was claimed again by another submit in between is left alone.

  Input:
    KEYS[1] the idempotency key
    ARGV[1] the TaskInstance id the submit claimed it for

  Output:
    1 deleted; 0 it names another TaskInstance, or is gone
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
