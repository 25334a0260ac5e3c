--[[
  The settle step's read of a TaskInstance's finished node job (`lib/master/settle.ts`), with the
  release of its package reference when the child completed: one round trip where BullMQ's
  `getChildrenValues` and a `release-ref-3.lua` took two. A completed child means the step
  completes the TaskInstance, so this is the release "before completed" that the master's step
  makes in any case; should the completion be lost, the step runs again, reads the same value and
  the release, being idempotent, changes nothing. A failed child (or none yet) releases nothing
  here: whether that failure is final is the step's to decide.

  Input:
    KEYS[1] processed hash  {NAME}:bull:tasks:<id>:processed (child key → its JSON return value)
    KEYS[2] failed hash     {NAME}:bull:tasks:<id>:failed (child key → its failure, for children
                            whose failure BullMQ was told to ignore)
    KEYS[3] holders zset    {NAME}:package:<name>:holders:<sha1>
    KEYS[4] refs hash       {NAME}:refs
    KEYS[5] idle hash       {NAME}:package:<name>:idle

    ARGV[1] TaskInstance id
    ARGV[2] sha1
    ARGV[3] now (ms)

  Output: { processed, failed }, each a flat HGETALL reply; `failed` is read only when
  `processed` is empty, else it is {}.
]]
--- @include "tydra:releaseHolder"
local processed = redis.call('HGETALL', KEYS[1])
if #processed > 0 then
  releaseHolder(KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3])
  return { processed, {} }
end
return { {}, redis.call('HGETALL', KEYS[2]) }
