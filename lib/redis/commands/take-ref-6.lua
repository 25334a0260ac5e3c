--[[
  Takes a TaskInstance's reference on a package version, atomically with the check that the
  version can still be used (`includes/takeHolder.lua`). Idempotent.

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
--- @include "tydra:takeHolder"
return takeHolder(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
