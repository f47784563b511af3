-- extend: renews a worker's lease on the jobs of one queue.
--
-- KEYS[1] leases set, KEYS[2] the worker's in-flight hash
-- ARGV[1] queue prefix, ARGV[2] worker id, ARGV[3] lease (ms, from the server's clock)
-- Returns the number of jobs the worker holds in this queue, or -1 when its lease had expired
-- and the reaper took its jobs back (their results will be ignored as stale). A worker whose
-- jobs were all acked meanwhile gets 0, not -1: the reaper leaves a marker to tell them apart.
local deadline = server_now() + tonumber(ARGV[3])
local held = redis.call('HLEN', KEYS[2])
if held > 0 or redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  -- Jobs without a lease entry would never be reaped, so a holder always gets one.
  redis.call('ZADD', KEYS[1], deadline, ARGV[2])
  return held
end
if redis.call('DEL', reaped_key(ARGV[2])) == 1 then return -1 end
return 0
