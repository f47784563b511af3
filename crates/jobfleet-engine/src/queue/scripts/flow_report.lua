-- flow_report: counts one member of a flow as succeeded or dead, or seals the flow, and runs
-- its callbacks when that finishes it.
--
-- KEYS[1] the flow's hash, KEYS[2] its members, KEYS[3] its succeeded members, KEYS[4] its
-- dead members, KEYS[5] the queue's stats hash
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] flow id, ARGV[4] 'succeeded', 'dead' or
-- 'seal', ARGV[5] the member ('' to seal), ARGV[6] how long a finished flow is kept (s)
-- Returns {state, fired}: state 0 when there is no such flow (it finished and expired) or the
-- member is none of its own, 1 when counted, 2 when counted before (a repeated delivery);
-- fired adds 1 when on_success was enqueued, 2 when on_complete was, 4 when the flow reported
-- itself to its parent through this queue's flow outbox (a sub-flow without on_complete).
--
-- A member counts once: a second report of the same end changes nothing, a success after a
-- death (an operator retried the dead child) moves it to succeeded, a death after a success
-- is a late word of a run that was repeated and is ignored. Callbacks run only once the flow
-- is sealed: every child enqueued. Each runs once: its time is written in the hash with it.
local now, what, member = tonumber(ARGV[2]), ARGV[4], ARGV[5]
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local state = 1
if what == 'seal' then
  if redis.call('HGET', KEYS[1], 'sealed') == '1' then state = 2 end
  redis.call('HSET', KEYS[1], 'sealed', 1)
elseif redis.call('SISMEMBER', KEYS[2], member) == 0 then
  return {0, 0}
elseif what == 'succeeded' then
  if redis.call('SADD', KEYS[3], member) == 0 then
    state = 2
  else
    if redis.call('SREM', KEYS[4], member) == 1 then redis.call('HINCRBY', KEYS[1], 'dead', -1) end
    redis.call('HINCRBY', KEYS[1], 'succeeded', 1)
  end
elseif redis.call('SISMEMBER', KEYS[3], member) == 1 or redis.call('SADD', KEYS[4], member) == 0 then
  state = 2
else
  redis.call('HINCRBY', KEYS[1], 'dead', 1)
end
local f = redis.call('HMGET', KEYS[1], 'sealed', 'total', 'succeeded', 'dead', 'completed_at',
  'succeeded_at', 'on_success', 'on_complete', 'parent')
if f[1] ~= '1' then return {state, 0} end
local total, ok, dead = tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
local on_success, on_complete, parent = f[7], f[8], f[9]

-- The callback job with what it is told spliced into its envelope (which Rust wrote and
-- which ends with '}'): ids and counts only, so the JSON is built here as it is.
local function callback(job)
  local ids = redis.call('SMEMBERS', KEYS[4])
  table.sort(ids)
  local shown = {}
  for i = 1, math.min(#ids, 1000) do shown[i] = '"' .. ids[i] .. '"' end
  local told = '{"flow":"' .. ARGV[3] .. '","total":' .. total .. ',"succeeded":' .. ok ..
    ',"failed":' .. dead .. ',"failed_ids":[' .. table.concat(shown, ',') .. ']}'
  push_pending({string.sub(job, 1, -2) .. ',"flow_result":' .. told .. '}'})
  count(KEYS[5], 'enqueued', 1)
  wake(1)
end
local function upward(outcome)
  redis.call('ZADD', prefix .. 'flowbox', now, outcome .. '|' .. parent)
end

local fired = 0
local complete_now = ok + dead == total and not f[5]
if complete_now then
  redis.call('HSET', KEYS[1], 'completed_at', now)
  if on_complete ~= '' then
    callback(on_complete)
    fired = fired + 2
  elseif parent ~= '' then
    upward(dead == 0 and 'succeeded' or 'dead')
    fired = fired + 4
  end
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], math.max(1, math.floor(tonumber(ARGV[6])))) end
end
if ok == total and not f[6] then
  redis.call('HSET', KEYS[1], 'succeeded_at', now)
  if on_success ~= '' then
    callback(on_success)
    fired = fired + 1
  end
  -- A sub-flow that reported a death to its parent and then succeeded after all.
  if not complete_now and on_complete == '' and parent ~= '' then
    upward('succeeded')
    fired = fired + 4
  end
end
return {state, fired}
