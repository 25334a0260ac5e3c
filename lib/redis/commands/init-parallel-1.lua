--[[
  Opens the state of a parallel TaskInstance for a run of its coordinator. The first run creates
  it; a run after a lost node keeps what is there (counters, units already enqueued) and refreshes
  the meta, whose owner moves with the coordinator's node job; a live state never expires.
  An ended state is left exactly as it is, TTL included: its coordinator ran again after reduce
  (its node job's lock expired, or its node died before the job completed) and answers with the
  value stored by `endParallel`, or with the abort reason, without running anything.

  Input:
    KEYS[1] state hash      {NAME}:par:<id>

    ARGV[1] maxFailed (set only when the state is new)
    ARGV[2] meta JSON

  Output:
    1  the state is ended: nothing changed
    0  the state is open (created or refreshed)
]]
if redis.call('HGET', KEYS[1], 'ended') == '1' then
  return 1
end
redis.call('HSETNX', KEYS[1], 'maxFailed', ARGV[1])
redis.call('HSET', KEYS[1], 'meta', ARGV[2])
redis.call('PERSIST', KEYS[1])
return 0
