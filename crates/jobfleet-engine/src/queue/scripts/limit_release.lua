-- limit_release: gives back the running slot of a job that finished, and makes the jobs that
-- wait for a slot due.
--
-- KEYS[1] the limit's running set, KEYS[2] leases set, KEYS[3] scheduled set, KEYS[4] its
-- waiting set (stored job -> when it began to wait)
-- ARGV[1] queue prefix, ARGV[2] the slot's member ("<worker>|<job id>"), ARGV[3] concurrency
-- Returns the number of waiting jobs made due.
-- As many waiting jobs as there are free slots (dead holders dropped) are made due now, in the
-- order they began to wait; an entry whose job is no longer in the scheduled set (it ran after
-- its own timer, or an operator moved it) is skipped. A job made due asks limit_take.lua again
-- when a worker takes it, so a slot taken meanwhile by another job only makes it wait again.
local now = server_now()
redis.call('ZREM', KEYS[1], ARGV[2])
local free = tonumber(ARGV[3]) - live_holders(KEYS[1], KEYS[2], now)
local woken = 0
while free > 0 do
  local first = redis.call('ZPOPMIN', KEYS[4])
  if #first == 0 then break end
  local job = first[1]
  if redis.call('ZSCORE', KEYS[3], job) then
    redis.call('ZADD', KEYS[3], 'XX', now, job)
    woken = woken + 1
    free = free - 1
  end
end
wake(woken)
return woken
