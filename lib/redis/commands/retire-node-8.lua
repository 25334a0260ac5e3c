--[[
  Forgets a node that has been gone for longer than the retention period and whose queue holds
  no pending job: removes it from the registry in one step with those checks, so a node that
  came back (a fresh heartbeat) or a job added meanwhile keeps it listed. The caller then
  obliterates the queue's leftover keys (finished jobs, events, meta).

  Input:
    KEYS[1] nodes zset          {NAME}:nodes
    KEYS[2] node info hash      {NAME}:node:<nodeId>
    KEYS[3] wait list           {NAME}:bull:node.<nodeId>:wait
    KEYS[4] active list         {NAME}:bull:node.<nodeId>:active
    KEYS[5] delayed zset        {NAME}:bull:node.<nodeId>:delayed
    KEYS[6] prioritized zset    {NAME}:bull:node.<nodeId>:prioritized
    KEYS[7] paused list         {NAME}:bull:node.<nodeId>:paused (older BullMQ versions)
    KEYS[8] waiting-children    {NAME}:bull:node.<nodeId>:waiting-children

    ARGV[1] node id
    ARGV[2] cutoff (ms): retire only if the last heartbeat (or stop) is older

  Output:
    1  retired
    0  not registered
   -1  heard from since the cutoff
   -2  its queue still holds pending jobs
]]
local seen = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not seen then
  return 0
end
if tonumber(seen) >= tonumber(ARGV[2]) then
  return -1
end
if redis.call("LLEN", KEYS[3]) + redis.call("LLEN", KEYS[4]) + redis.call("ZCARD", KEYS[5])
    + redis.call("ZCARD", KEYS[6]) + redis.call("LLEN", KEYS[7]) + redis.call("ZCARD", KEYS[8]) > 0 then
  return -2
end
redis.call("ZREM", KEYS[1], ARGV[1])
redis.call("DEL", KEYS[2])
return 1
