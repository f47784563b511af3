-- enqueue_tick: enqueues one tick of a schedule, exactly once however many schedulers try.
--
-- KEYS[1] the pending list of the job's priority, KEYS[2] ticks hash (schedule -> "tick ms|job
-- id"), KEYS[3] stats hash,
-- KEYS[4] the schedule's tick history list ("tick ms|job id", newest first)
-- ARGV[1] queue prefix, ARGV[2] schedule name, ARGV[3] tick (ms), ARGV[4] stored job,
-- ARGV[5] job id, ARGV[6] ticks kept in the history
-- Returns 1 when this call enqueued the tick, 0 when that tick or a later one of the same
-- schedule was enqueued already (by another scheduler, or by this one before a lost reply).
-- The claim and the enqueue are one atomic step, so a scheduler that dies in between cannot
-- lose a tick: it has either done both or neither.
local last = redis.call('HGET', KEYS[2], ARGV[2])
if last then
  local t = tonumber(string.match(last, '^(%d+)'))
  if t and t >= tonumber(ARGV[3]) then return 0 end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. '|' .. ARGV[5])
redis.call('LPUSH', KEYS[4], ARGV[3] .. '|' .. ARGV[5])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
redis.call('RPUSH', KEYS[1], ARGV[4])
count(KEYS[3], 'enqueued', 1)
wake(1)
return 1
