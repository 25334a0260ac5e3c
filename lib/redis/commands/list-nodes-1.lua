--[[
  Lists the registered nodes with their heartbeat time and description in one round trip (a
  master reads it at every dispatch): the ZSET, then each node's hash.

  Input:
    KEYS[1] nodes zset          tydra:nodes (member: node id, score: last heartbeat, ms)

    ARGV[1] node hash prefix    tydra:node: (the hash of node <id> is ARGV[1] .. <id>)

  Output: a flat array, per node in the ZSET's order: id, score (as a string), and the node's
  hash as a flat array of field, value (empty when the hash is gone).
]]
local flat = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #flat, 2 do
  out[#out + 1] = flat[i]
  out[#out + 1] = flat[i + 1]
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. flat[i])
end
return out
