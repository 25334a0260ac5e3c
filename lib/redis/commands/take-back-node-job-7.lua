--[[
  Takes a node job back from a node that is gone, in one step: checks that the job is still
  stranded (no lock, still waiting, delayed or active), removes it with BullMQ's own removal code
  (which also moves its TaskInstance from `waiting-children` back to `wait` when it was the last
  pending child), and records what happened for the master's next dispatch of the TaskInstance.

  Why one script: done in several round trips (read the state, mark the TaskInstance, remove),
  the node could finish or lock the job in between, and the sweeper would drop a result or take
  back work a live node holds. Why BullMQ's code for the removal: moving a parent out of
  `waiting-children` (markers, paused queues, events) is BullMQ's business; the script pulls in
  the installed BullMQ's own `removeJobWithChildren` (see `bullmq:` includes in `scripts.ts`), the
  function `Queue.remove` runs, rather than a copy that could drift from it.

  The record is a hash of its own rather than a change to the TaskInstance's data: Lua's cjson
  would rewrite the user's input on the way (`[]` becomes `{}`, long numbers lose digits).

  Input:
    KEYS[1] node job hash      {NAME}:bull:node.<nodeId>:<jobId>
    KEYS[2] node job lock      {NAME}:bull:node.<nodeId>:<jobId>:lock
    KEYS[3] wait list          {NAME}:bull:node.<nodeId>:wait
    KEYS[4] active list        {NAME}:bull:node.<nodeId>:active
    KEYS[5] delayed zset       {NAME}:bull:node.<nodeId>:delayed
    KEYS[6] prioritized zset   {NAME}:bull:node.<nodeId>:prioritized
    KEYS[7] take-back record   {NAME}:taken-back:<instanceId>

    ARGV[1] queue key prefix   {NAME}:bull:node.<nodeId>:
    ARGV[2] job id (the TaskInstance id)
    ARGV[3] node id
    ARGV[4] the TaskInstance's job key, which must be the node job's parent: {NAME}:bull:tasks:<instanceId>
    ARGV[5] the TaskInstance's dispatch time (ms), copied into the record
    ARGV[6] now (ms)
    ARGV[7] time to live of the record (ms)

  Output:
    2  taken back; the node had started it (it was active)
    1  taken back; the node had not started it (waiting or delayed)
    0  no such job
   -1  locked: its node still holds it (alive after all)
   -2  not a child of that TaskInstance
   -3  finished (or in no state a node takes jobs from)
]]
local rcall = redis.call

--- @include "bullmq:removeJobWithChildren"

local jobId = ARGV[2]

if rcall("EXISTS", KEYS[1]) == 0 then
  return 0
end
if rcall("EXISTS", KEYS[2]) == 1 then
  return -1
end
if rcall("HGET", KEYS[1], "parentKey") ~= ARGV[4] then
  return -2
end

local ran
if rcall("LPOS", KEYS[4], jobId) then
  ran = 1
elseif rcall("LPOS", KEYS[3], jobId) or rcall("ZSCORE", KEYS[5], jobId) or rcall("ZSCORE", KEYS[6], jobId) then
  ran = 0
else
  return -3
end

removeJobWithChildren(ARGV[1], jobId, nil, { removeChildren = false, ignoreProcessed = false, ignoreLocked = false })
rcall("HSET", KEYS[7], "node", ARGV[3], "dispatchAt", ARGV[5], "ran", ran, "at", ARGV[6])
rcall("PEXPIRE", KEYS[7], ARGV[7])
return 1 + ran
