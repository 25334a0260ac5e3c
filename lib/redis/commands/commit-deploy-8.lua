--[[
  Makes an uploaded package version visible, atomically: the blob, its version entry, the
  package's latest pointer, the package list and the deploy's lease change together or not at
  all.

  Input:
    KEYS[1] upload key      {NAME}:upload:<uuid> (filled by APPENDs; may not exist on a dedupe)
    KEYS[2] blob key        {NAME}:pkg:<name>:<sha1>
    KEYS[3] versions hash   {NAME}:package:<name>:versions
    KEYS[4] latest key      {NAME}:package:<name>:latest
    KEYS[5] packages zset   {NAME}:packages
    KEYS[6] lease key       {NAME}:package:<name>:lease:<sha1>
    KEYS[7] idle hash       {NAME}:package:<name>:idle
    KEYS[8] undeployed set  {NAME}:package:<name>:undeployed

    ARGV[1] sha1
    ARGV[2] version JSON {name, sha1, size, deployedAt, manifest}
    ARGV[3] now (ms)
    ARGV[4] package name
    ARGV[5] lease (ms)

  Output:
     1  the upload became the blob
     0  the blob already existed (identical content): the upload, if any, is dropped
    -1  neither the blob nor the upload exists (the upload expired): nothing changed
]]
local stored = 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('DEL', KEYS[1])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  -- RENAME keeps the upload's TTL: the blob must not expire.
  redis.call('PERSIST', KEYS[2])
  stored = 1
else
  return -1
end
redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[2])
redis.call('SET', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[4])
-- A deploy of undeployed content puts it back in use; its grace period starts again now.
redis.call('SREM', KEYS[8], ARGV[1])
redis.call('HSET', KEYS[7], ARGV[1], ARGV[3])
redis.call('SET', KEYS[6], ARGV[3], 'PX', ARGV[5])
return stored
