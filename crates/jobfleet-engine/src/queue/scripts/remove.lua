-- remove: deletes the keys of a queue that hold jobs, but only when it holds none (unless
-- forced), in one step, so that no job enqueued between a check and the deletion is dropped
-- without being counted.
--
-- KEYS[1] pending list of the default priority (the other levels' lists are counted and
-- removed with it), KEYS[2] scheduled set, KEYS[3] retry set, KEYS[4] dead set,
-- KEYS[5] leases set
-- ARGV[1] queue prefix, ARGV[2] force (1) or not (0)
-- Returns {removed (0|1), pending, scheduled, retry, dead, active, keys unlinked}: the jobs the
-- queue held at that moment. Without force and with any job, nothing is removed. The in-flight hashes of
-- the workers in the leases set are removed with the rest; the other keys of the queue (stats,
-- ticks, unique locks, ...) hold no jobs and are removed by the caller afterwards. UNLINK frees
-- big lists in the background instead of blocking the server.
local pending = 0
for _, key in ipairs(pending_lists()) do pending = pending + redis.call('LLEN', key) end
local scheduled = redis.call('ZCARD', KEYS[2])
local retry = redis.call('ZCARD', KEYS[3])
local dead = redis.call('ZCARD', KEYS[4])
local lists = {}
local active = 0
for _, worker in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
  local key = inflight_key(worker)
  active = active + held_count(key)
  lists[#lists + 1] = key
end
if ARGV[2] ~= '1' and pending + scheduled + retry + dead + active > 0 then
  return {0, pending, scheduled, retry, dead, active, 0}
end
local unlinked = redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4], KEYS[5], unpack(pending_lists()))
for _, key in ipairs(lists) do unlinked = unlinked + redis.call('UNLINK', key) end
return {1, pending, scheduled, retry, dead, active, unlinked}
