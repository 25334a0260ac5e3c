--[[
  Records how the units of one workunit batch ended, once per unit: the first result recorded
  for an index wins (a batch run again after its node died, at least once, counts nothing twice).
  A unit that failed for good gets `null` as its result and its error in the failures hash. The
  first failure past the TaskInstance's `maxFailed` sets `abort` to that unit, so every node
  stops its work and the coordinator fails the TaskInstance naming it.

  Input:
    KEYS[1] state hash      {NAME}:par:<id>
    KEYS[2] results hash    {NAME}:par:<id>:results
    KEYS[3] failures hash   {NAME}:par:<id>:failures
    KEYS[4] batches set     {NAME}:par:<id>:batches

    ARGV[1] batch job id (no longer waiting or running)
    ARGV[2] units the batch had marked running
    ARGV[3..] triples: unit index, 'ok' or 'fail', JSON result or JSON {message, stack}

  Output:
    {-1}   the TaskInstance ended (its state is marked `ended`, or gone)
    {done, failed, total, splitDone, running, abort}   counters after the record; abort '' if none
]]
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'ended') == 1 then
  return {-1}
end
redis.call('SREM', KEYS[4], ARGV[1])
local running = tonumber(ARGV[2])
if running ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'running', -running)
end
local done, failed, firstFailed = 0, 0, nil
for i = 3, #ARGV, 3 do
  local index, status, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if status == 'ok' then
    if redis.call('HSETNX', KEYS[2], index, payload) == 1 then
      done = done + 1
    end
  elseif redis.call('HSETNX', KEYS[2], index, 'null') == 1 then
    failed = failed + 1
    firstFailed = firstFailed or index
    redis.call('HSET', KEYS[3], index, payload)
  end
end
local d = redis.call('HINCRBY', KEYS[1], 'done', done)
local f = redis.call('HINCRBY', KEYS[1], 'failed', failed)
local fields = redis.call('HMGET', KEYS[1], 'total', 'splitDone', 'maxFailed', 'abort', 'running')
local abort = fields[4]
if (not abort) and firstFailed and f > (tonumber(fields[3]) or 0) then
  abort = cjson.encode({ kind = 'workunit', index = tonumber(firstFailed) })
  redis.call('HSET', KEYS[1], 'abort', abort)
end
return { d, f, tonumber(fields[1]) or 0, tonumber(fields[2]) or 0, tonumber(fields[5]) or 0, abort or '' }
