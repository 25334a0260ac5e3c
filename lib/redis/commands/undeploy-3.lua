--[[
  Removes package versions from use: they can no longer be resolved or submitted. Their bytes
  stay until the prune job finds them without holders. If the latest version is undeployed,
  latest moves to the newest version still in use, or disappears when there is none.

  Input:
    KEYS[1] versions hash   {NAME}:package:<name>:versions
    KEYS[2] latest key      {NAME}:package:<name>:latest
    KEYS[3] undeployed set  {NAME}:package:<name>:undeployed

    ARGV[1] sha1 to undeploy, or '' for every version of the package

  Output: { undeployed count, new latest sha1 or '' }
    the count is -1 when the version (or the package) does not exist
]]
local targets
if ARGV[1] == '' then
  targets = redis.call('HKEYS', KEYS[1])
elseif redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  targets = { ARGV[1] }
else
  targets = {}
end
if #targets == 0 then
  return { -1, redis.call('GET', KEYS[2]) or '' }
end
local count = 0
for _, sha1 in ipairs(targets) do
  count = count + redis.call('SADD', KEYS[3], sha1)
end
local latest = redis.call('GET', KEYS[2])
if latest and redis.call('SISMEMBER', KEYS[3], latest) == 1 then
  local best, bestAt = nil, -1
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if redis.call('SISMEMBER', KEYS[3], all[i]) == 0 then
      local at = tonumber(cjson.decode(all[i + 1]).deployedAt) or 0
      if at > bestAt then
        best, bestAt = all[i], at
      end
    end
  end
  if best then
    redis.call('SET', KEYS[2], best)
  else
    redis.call('DEL', KEYS[2])
  end
  latest = best
end
return { count, latest or '' }
