--[[
  Reads what a submit needs to know of a package version in one round trip: which sha1 `latest`
  names (when no sha1 is given), the version's record, and whether it was undeployed. Read only:
  the reference a submit then takes (`take-ref-6.lua`) checks again, atomically, that the version
  can be used.

  Input:
    KEYS[1] latest string   tydra:package:<name>:latest
    KEYS[2] versions hash   tydra:package:<name>:versions
    KEYS[3] undeployed set  tydra:package:<name>:undeployed

    ARGV[1] the version's full sha1, or '' for the latest

  Output: { sha1, version JSON, undeployed }
    sha1        '' when no sha1 was given and the package has no latest
    version     '' when the versions hash has no such sha1
    undeployed  1 if the version was undeployed, else 0
]]
local sha1 = ARGV[1]
if sha1 == '' then
  sha1 = redis.call('GET', KEYS[1])
  if not sha1 then
    return { '', '', 0 }
  end
end
local json = redis.call('HGET', KEYS[2], sha1)
if not json then
  return { sha1, '', 0 }
end
return { sha1, json, redis.call('SISMEMBER', KEYS[3], sha1) }
