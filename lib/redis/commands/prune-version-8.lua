--[[
  Decides whether one package version may be deleted and, unless this is a dry run, deletes it,
  in one step: nothing can take a reference between the check and the delete.

  A version is deleted only when all of these hold:
    - nobody holds a reference (the holders set is empty);
    - and either it was undeployed (nobody can take a new reference, so lease and grace no
      longer protect anything),
    - or no deploy lease is live, it is not the package's latest version, and it has been idle
      (no holders) for longer than the grace period.

  Input:
    KEYS[1] versions hash   {NAME}:package:<name>:versions
    KEYS[2] holders zset    {NAME}:package:<name>:holders:<sha1>
    KEYS[3] lease key       {NAME}:package:<name>:lease:<sha1>
    KEYS[4] latest key      {NAME}:package:<name>:latest
    KEYS[5] idle hash       {NAME}:package:<name>:idle
    KEYS[6] undeployed set  {NAME}:package:<name>:undeployed
    KEYS[7] blob key        {NAME}:pkg:<name>:<sha1>
    KEYS[8] packages zset   {NAME}:packages

    ARGV[1] sha1
    ARGV[2] now (ms)
    ARGV[3] grace (ms)
    ARGV[4] '1' for a dry run (decide, change nothing)
    ARGV[5] package name

  Output: { verdict, detail }
    { 'gone', 0 }        no such version (already pruned)
    { 'held', n }        n TaskInstances hold it
    { 'leased', ms }     a deploy lease is live for ms more
    { 'latest', 0 }      it is the package's latest version
    { 'grace', since }   idle since `since` (ms), not yet for longer than the grace period
    { 'eligible', since, undeployed } dry run: would be deleted (undeployed: 1 or 0)
    { 'removed', since, undeployed }  deleted
]]
local sha1 = ARGV[1]
local now = tonumber(ARGV[2])
local json = redis.call('HGET', KEYS[1], sha1)
if not json then
  return { 'gone', 0 }
end
local holders = redis.call('ZCARD', KEYS[2])
if holders > 0 then
  return { 'held', holders }
end
local since = tonumber(redis.call('HGET', KEYS[5], sha1) or cjson.decode(json).deployedAt or 0)
local undeployed = redis.call('SISMEMBER', KEYS[6], sha1)
if undeployed == 0 then
  local lease = redis.call('PTTL', KEYS[3])
  if lease > 0 then
    return { 'leased', lease }
  end
  if redis.call('GET', KEYS[4]) == sha1 then
    return { 'latest', 0 }
  end
  if now - since < tonumber(ARGV[3]) then
    return { 'grace', since }
  end
end
if ARGV[4] == '1' then
  return { 'eligible', since, undeployed }
end
redis.call('DEL', KEYS[7], KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[1], sha1)
redis.call('HDEL', KEYS[5], sha1)
redis.call('SREM', KEYS[6], sha1)
if redis.call('HLEN', KEYS[1]) == 0 then
  -- The package's last version: nothing of it remains.
  redis.call('DEL', KEYS[1], KEYS[4], KEYS[5], KEYS[6])
  redis.call('ZREM', KEYS[8], ARGV[5])
end
return { 'removed', since, undeployed }
