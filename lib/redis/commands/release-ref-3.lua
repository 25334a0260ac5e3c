--[[
  Releases a TaskInstance's reference (`includes/releaseHolder.lua`). Idempotent.

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
--- @include "tydra:releaseHolder"
return releaseHolder(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
