--[[
  Reads what a submit needs to know of a package version in one round trip: which sha1 `latest`
  names (when no sha1 is given), the version's record, and whether it was undeployed; and, when
  asked (a submit), takes the new TaskInstance's reference on it in the same step
  (`includes/takeHolder.lua`). Resolved and referenced at once, no prune can fall between the two:
  a submit whose checks then fail lets go of the reference again. Without an instance id (a
  schedule's resolve) it only reads.

  Input:
    KEYS[1] latest string   {NAME}:package:<name>:latest
    KEYS[2] versions hash   {NAME}:package:<name>:versions
    KEYS[3] undeployed set  {NAME}:package:<name>:undeployed
    KEYS[4] refs hash       {NAME}:refs
    KEYS[5] idle hash       {NAME}:package:<name>:idle

    ARGV[1] the version's full sha1, or '' for the latest
    ARGV[2] the TaskInstance id to take the reference for, or '' to only read
    ARGV[3] now (ms)
    ARGV[4] the package's name
    ARGV[5] the holders key's prefix, `{NAME}:package:<name>:holders:` (the sha1 completes it)
    ARGV[6] the blob key's prefix, `{NAME}:pkg:<name>:` (the sha1 completes it)

  Output: { sha1, version JSON, undeployed, referenced }
    sha1        '' when no sha1 was given and the package has no latest
    version     '' when the versions hash has no such sha1
    undeployed  1 if the version was undeployed, else 0
    referenced  1 the reference is held; 0 not asked, or not taken (the version is not usable
                or its tarball is gone)
]]
--- @include "tydra:takeHolder"
local sha1 = ARGV[1]
if sha1 == '' then
  sha1 = redis.call('GET', KEYS[1])
  if not sha1 then
    return { '', '', 0, 0 }
  end
end
local json = redis.call('HGET', KEYS[2], sha1)
if not json then
  return { sha1, '', 0, 0 }
end
local undeployed = redis.call('SISMEMBER', KEYS[3], sha1)
if undeployed == 1 or ARGV[2] == '' then
  return { sha1, json, undeployed, 0 }
end
local status = takeHolder(KEYS[2], ARGV[5] .. sha1, KEYS[4], KEYS[3], ARGV[6] .. sha1, KEYS[5],
  sha1, ARGV[2], ARGV[3], ARGV[4] .. '@' .. sha1, '0')
return { sha1, json, 0, status == 1 and 1 or 0 }
