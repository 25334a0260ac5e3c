--[[
  Makes an uploaded package version visible, atomically: the blob, its version entry, the
  package's latest pointer and the package list change together or not at all.

  Input:
    KEYS[1] upload key      tydra:upload:<uuid> (filled by APPENDs; may not exist on a dedupe)
    KEYS[2] blob key        pkg:<name>:<sha1>
    KEYS[3] versions hash   tydra:package:<name>:versions
    KEYS[4] latest key      tydra:package:<name>:latest
    KEYS[5] packages zset   tydra:packages

    ARGV[1] sha1
    ARGV[2] version JSON {name, sha1, size, deployedAt, manifest}
    ARGV[3] now (ms)
    ARGV[4] package name

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
return stored
