-- flow_create: records a flow in the queue of its callbacks, before its children are enqueued.
--
-- KEYS[1] the flow's hash, KEYS[2] its members set, KEYS[3] the queue's flows registry
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] flow id, ARGV[4] its parent
-- ("<queue>|<flow id>|<member>", '' for none), ARGV[5] the on_success job as stored ('' for
-- none), ARGV[6] the on_complete job ('' for none), then the ids of its members
-- Returns 1 when the flow was recorded, 0 when a flow of this id and as many members was
-- recorded before (a start tried again, which goes on to enqueue and seal), or an error when
-- one of this id has other members.
local total = #ARGV - 6
if redis.call('EXISTS', KEYS[1]) == 1 then
  local had = tonumber(redis.call('HGET', KEYS[1], 'total'))
  if had ~= total then
    return redis.error_reply('flow ' .. ARGV[3] .. ' exists with ' .. tostring(had) ..
      ' children, not ' .. total)
  end
  return 0
end
redis.call('HSET', KEYS[1], 'total', total, 'succeeded', 0, 'dead', 0, 'sealed', 0,
  'created_at', ARGV[2], 'parent', ARGV[4], 'on_success', ARGV[5], 'on_complete', ARGV[6])
local members = {}
for i = 7, #ARGV do members[#members + 1] = ARGV[i] end
chunked('SADD', KEYS[2], members)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
