-- limit_take: asks a kind's fleet-wide limits whether a leased job may start now.
--
-- KEYS[1] this worker's in-flight hash, KEYS[2] leases set, KEYS[3] scheduled set,
-- KEYS[4] stats hash, KEYS[5] the limit's running set ("<worker>|<job id>" -> start ms),
-- KEYS[6] its starts set (one member per start -> start ms), KEYS[7] its reservations set
-- (job id -> the time the job was told to come back), KEYS[8] its waiting set (stored jobs
-- that wait for a running slot -> when they began to wait), KEYS[9] the queue's set of limit
-- names
-- ARGV[1] queue prefix, ARGV[2] the stored job as leased, ARGV[3] worker id, ARGV[4] job id,
-- ARGV[5] limit name, ARGV[6] concurrency (0: none), ARGV[7] starts per window (0: none),
-- ARGV[8] window (ms), ARGV[9] how long a job waiting for a slot sleeps at most (ms),
-- ARGV[10] the job's lease token
-- Returns {outcome, ms}, times by the server's clock:
--   {1, start}  granted: the job runs now, holding a running slot (with a concurrency) and
--               counted as a start (with a rate)
--   {2, due}    every running slot is held: the job waits in the scheduled set until a slot
--               is released (limit_release.lua makes it due then) or, should no release come
--               because the holder died, until `due`, when it asks again
--   {3, due}    the window's starts are used up: the job waits in the scheduled set until
--               `due`, the time a start is free for it
--   {0, 0}      the job is no longer in this worker's in-flight hash (its lease was lost)
-- A waiting job is snoozed, not failed: its attempt is not used. A slot belongs to a worker's
-- lease: a member whose worker no longer holds a live lease in KEYS[2] is a dead holder, and
-- is dropped here, so a slot is never leaked by a worker that died. Starts are checked
-- exactly (never more than ARGV[7] in any window of ARGV[8] ms); reservations only spread
-- the waiting jobs' next tries so that they do not all come back at the same moment.
local now = server_now()
local job, worker, id, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local conc, n, window = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local token = ARGV[10]
if redis.call('HEXISTS', KEYS[1], token) == 0 then return {0, 0} end
redis.call('SADD', KEYS[9], name)

-- Moves the job from the in-flight hash to the scheduled set, due at `due`.
local function wait_until(due)
  redis.call('HDEL', KEYS[1], token)
  redis.call('ZADD', KEYS[3], due, job)
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], worker) end
  count(KEYS[4], 'active', -1)
end

if conc > 0 and live_holders(KEYS[5], KEYS[2], now) >= conc then
  local due = now + tonumber(ARGV[9])
  wait_until(due)
  -- NX: a job that asks again after its recheck keeps its place in the line.
  redis.call('ZADD', KEYS[8], 'NX', now, job)
  redis.call('PEXPIRE', KEYS[8], tonumber(ARGV[9]) * 4 + 86400000)
  return {2, due}
end

if n > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - window)
  -- A job back for its reservation is not sent away again for being early (a worker whose
  -- clock runs ahead promotes it a little early): the exact count below decides.
  local reserved = redis.call('ZSCORE', KEYS[7], id)
  redis.call('ZREM', KEYS[7], id)
  local used = redis.call('ZCARD', KEYS[6])
  -- A job coming back for its reservation takes a free start; a new job also waits its turn
  -- behind the reservations of those that came before it.
  local free = used < n
  if free and not reserved then free = next_start(KEYS[6], KEYS[7], n, window, now) <= now end
  if not free then
    local due = math.max(next_start(KEYS[6], KEYS[7], n, window, now), now + 1)
    redis.call('ZADD', KEYS[7], due, id)
    redis.call('PEXPIRE', KEYS[7], due - now + window)
    wait_until(due)
    return {3, due}
  end
  redis.call('ZADD', KEYS[6], now, id .. ':' .. now)
  redis.call('PEXPIRE', KEYS[6], window)
end

if conc > 0 then
  redis.call('ZADD', KEYS[5], now, worker .. '|' .. id)
  redis.call('PEXPIRE', KEYS[5], 86400000)
  redis.call('ZREM', KEYS[8], job)
end
return {1, now}
