-- extend: renews a worker's lease on the jobs of one queue.
--
-- KEYS[1] leases set, KEYS[2] the worker's in-flight list
-- ARGV[1] queue prefix, ARGV[2] worker id, ARGV[3] new lease deadline (ms)
-- Returns the number of jobs the worker still holds in this queue, or -1 when its lease had
-- already expired and the reaper took its jobs back (their results will be ignored as stale).
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
  return redis.call('LLEN', KEYS[2])
end
local held = redis.call('LLEN', KEYS[2])
if held > 0 then
  -- Defensive: jobs without a lease entry would never be reaped, so give them one.
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  return held
end
return -1
