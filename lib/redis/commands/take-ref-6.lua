--[[
  Takes a TaskInstance's reference on a package version, atomically with the check that the
  version can still be used. A prune runs as one script too, so it sees either no holder (and
  this script then finds the version gone) or the holder (and keeps the version).
  Idempotent: taking a reference the instance already holds changes nothing.

  Input:
    KEYS[1] versions hash   {NAME}:package:<name>:versions
    KEYS[2] holders zset    {NAME}:package:<name>:holders:<sha1>
    KEYS[3] refs hash       {NAME}:refs
    KEYS[4] undeployed set  {NAME}:package:<name>:undeployed
    KEYS[5] blob key        {NAME}:pkg:<name>:<sha1>
    KEYS[6] idle hash       {NAME}:package:<name>:idle

    ARGV[1] sha1
    ARGV[2] TaskInstance id
    ARGV[3] now (ms)
    ARGV[4] `name@sha1`
    ARGV[5] '1' to accept an undeployed version (an instance that already holds it), else '0'

  Output:
     1  the reference is held
     0  no such version (never deployed, or pruned): nothing changed
    -1  the version was undeployed: nothing changed
]]
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 or redis.call('EXISTS', KEYS[5]) == 0 then
  return 0
end
local held = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not held and ARGV[5] ~= '1' and redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then
  return -1
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
redis.call('HDEL', KEYS[6], ARGV[1])
return 1
