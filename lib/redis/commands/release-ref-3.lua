--[[
  Releases a TaskInstance's reference. Idempotent: a second release finds no holder and changes
  nothing, so a count (the holders set's size) can never go below zero or be released twice.
  When the last holder goes, the version's idle time starts: the prune job's grace period is
  measured from it.

  Input:
    KEYS[1] holders zset    {NAME}:package:<name>:holders:<sha1>
    KEYS[2] refs hash       {NAME}:refs
    KEYS[3] idle hash       {NAME}:package:<name>:idle

    ARGV[1] TaskInstance id
    ARGV[2] sha1
    ARGV[3] now (ms)

  Output:
    1  released
    0  the instance held no reference on this version
]]
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
return 1
