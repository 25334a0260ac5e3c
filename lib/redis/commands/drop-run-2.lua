--[[
  Drops what the ended run of a TaskInstance left, before it runs again (a retry from Bull Board),
  in one step: its children (the node job, or a sequence's step TaskInstances with their own
  children), removed with BullMQ's own removal code, the TaskInstance's record of how they ended
  (its processed and failed-children hashes, which BullMQ's retry keeps: the master would settle
  the new run from them at once), and, for a parallel TaskInstance, its failed workunit batches
  (kept a day under fixed ids: the new run's batches, with the same ids, would not be added).

  Why one script: a child that a worker still holds (a branch of a failed sequence still being
  stopped) must not be removed; checked and removed in one step, none can be taken meanwhile.

  Input:
    KEYS[1] the TaskInstance's job key       {NAME}:bull:tasks:<id>
    KEYS[2] the workunits queue's failed set {NAME}:bull:workunits:failed

    ARGV[1] the workunits queue key prefix   {NAME}:bull:workunits:
    ARGV[2] the prefix of the TaskInstance's batch ids (`<id>.b`), or '' for no batches

  Output:
    n >= 0  dropped: n children and batches removed
   -1       a child (or one of its children) is still held by a worker: still running
]]
local rcall = redis.call

--- @include "bullmq:removeJobWithChildren"

local jobKey = KEYS[1]
for _, childKey in ipairs(rcall("SMEMBERS", jobKey .. ":dependencies")) do
  local childId = getJobIdFromKey(childKey)
  if isLocked(getJobKeyPrefix(childKey, childId), childId, "1") then
    return -1
  end
end

local removed = rcall("HLEN", jobKey .. ":processed") + rcall("HLEN", jobKey .. ":failed") +
  rcall("ZCARD", jobKey .. ":unsuccessful") + rcall("SCARD", jobKey .. ":dependencies")
local options = { removeChildren = true, ignoreProcessed = false, ignoreLocked = false }
removeJobChildren("", jobKey, options)
rcall("DEL", jobKey .. ":processed", jobKey .. ":failed", jobKey .. ":unsuccessful", jobKey .. ":dependencies")

local batchPrefix = ARGV[2]
if batchPrefix ~= "" then
  for _, batchId in ipairs(rcall("ZRANGE", KEYS[2], 0, -1)) do
    if string.sub(batchId, 1, #batchPrefix) == batchPrefix then
      removeJobWithChildren(ARGV[1], batchId, nil, options)
      removed = removed + 1
    end
  end
end
return removed
