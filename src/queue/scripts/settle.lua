-- settle: every outcome of a leased job other than success, for a batch of jobs.
--
-- KEYS[1] active set, KEYS[2] leases hash, KEYS[3] pending list, KEYS[4] scheduled set,
-- KEYS[5] retry set, KEYS[6] dead set, KEYS[7] stats hash
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] TTL of per-minute stats (s),
-- ARGV[4] dead cap by count, ARGV[5] dead cutoff (ms; older deaths are evicted),
-- ARGV[6] max evictions per call, then 5 values per job:
--   id, lease token, action, due time (ms), error text
-- Actions:
--   retry   a failed attempt: to the retry set at the due time (straight to pending when due)
--   snooze  the handler asked to run later: to the scheduled set, the attempt is not consumed
--   requeue handed back at shutdown: to the head of pending, the attempt is not consumed
--   kill    to the dead set with the error, the unique lock released
-- Returns {retried, snoozed, requeued, killed, stale, evicted by age, evicted by count}.
-- Every job is fenced by its lease token like in ack.lua. A consumed attempt is written to
-- the job hash here, from the lease; snooze and requeue leave the stored count as it was.
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local jobs = {}
for i = 7, #ARGV, 5 do
  jobs[#jobs + 1] = {id = ARGV[i], token = ARGV[i + 1], action = ARGV[i + 2],
    due = tonumber(ARGV[i + 3]), err = ARGV[i + 4]}
end
local ids = {}
for i, j in ipairs(jobs) do ids[i] = j.id end
local leases = read_leases(KEYS[2], ids)
local settled, ready, front, retry, sched = {}, {}, {}, {}, {}
local n = {retry = 0, snooze = 0, requeue = 0, kill = 0}
local stale = 0
for i, j in ipairs(jobs) do
  local l = leases[i]
  if not l or l.token ~= j.token or n[j.action] == nil then
    stale = stale + 1
  else
    local key = job_key(j.id)
    settled[#settled + 1] = j.id
    n[j.action] = n[j.action] + 1
    if j.action == 'retry' then
      redis.call('HSET', key, 'attempt', l.attempt, 'error', j.err, 'failed_at', now)
      if j.due <= now then
        ready[#ready + 1] = j.id
      else
        retry[#retry + 1] = j.due
        retry[#retry + 1] = j.id
      end
    elseif j.action == 'snooze' then
      if j.due <= now then
        ready[#ready + 1] = j.id
      else
        sched[#sched + 1] = j.due
        sched[#sched + 1] = j.id
      end
    elseif j.action == 'requeue' then
      front[#front + 1] = j.id
    else
      redis.call('HSET', key, 'attempt', l.attempt, 'error', j.err, 'failed_at', now, 'dead_at', now)
      redis.call('ZADD', KEYS[6], now, j.id)
      release_unique(l.uniq, j.id)
    end
  end
end
chunked('HDEL', KEYS[2], settled)
chunked('ZREM', KEYS[1], settled)
chunked('RPUSH', KEYS[3], ready)
chunked('LPUSH', KEYS[3], front)
chunked('ZADD', KEYS[5], retry)
chunked('ZADD', KEYS[4], sched)
count(KEYS[7], 'failed', n.retry + n.kill, now, ttl)
count(KEYS[7], 'dead', n.kill)
local ev = {0, 0}
if n.kill > 0 then
  ev = trim_dead(KEYS[6], KEYS[7], tonumber(ARGV[5]), tonumber(ARGV[4]), tonumber(ARGV[6]), 'dead_evicted')
end
-- Delayed retries and snoozes are announced too: an idle worker re-reads the next due time.
wake(#ready + #front + #retry + #sched)
return {n.retry, n.snooze, n.requeue, n.kill, stale, ev[1], ev[2]}
