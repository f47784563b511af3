-- settle: every outcome of a leased job other than success, for a batch of jobs.
--
-- KEYS[1] the worker's in-flight hash, KEYS[2] leases set, KEYS[3] pending list of the default
-- priority (a job goes to the pending list of its own priority: pending_key in the prelude),
-- KEYS[4] scheduled set, KEYS[5] retry set, KEYS[6] dead set, KEYS[7] stats hash
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] TTL of per-minute stats (s),
-- ARGV[4] dead cap by count, ARGV[5] dead cutoff (ms; older deaths are evicted),
-- ARGV[6] worker id, ARGV[7] lane (`settle` or `requeue`) and ARGV[8] call id, ARGV[9] how
-- long the reply is remembered (s; see `remembered` in the prelude), ARGV[10] '1' to keep the
-- history of failed attempts, '0' not to, then 7 values per job:
--   its lease token (from fetch.lua), action, due time (ms), the job to store (the updated
--   header for a retry or a kill, the job as leased for a snooze or a hand-back), id, unique
--   key, the entry of its history of attempts ('' for none; see calls.rs)
-- Actions:
--   retry   a failed attempt: the updated job (attempts + 1, error) to the retry set at the due
--           time, or straight to pending when already due
--   snooze  run again at the due time, unchanged: the attempt is not consumed
--   requeue handed back at shutdown: to the head of pending, unchanged
--   kill    the updated job to the dead set; its unique lock is released (not the one its
--           own id implies, which lasts its TTL: see end_unique)
-- Returns {retried, snoozed, requeued, killed, stale, evicted by age, evicted by count, then the
-- 1-based positions of the stale jobs among the call's jobs}.
-- A killed job of a flow reports its death to the flow's outbox (flow_end in the prelude).
-- Every job is fenced like in ack.lua: only a token still in this worker's in-flight hash moves,
-- and the job it held is never read: what is stored comes from the caller.
-- A retried or killed job's failure is added to its history of attempts (`attempts:<id>`),
-- kept as long as a dead job is, unless ARGV[10] turns the history off. The entry comes
-- written from the caller, which knows what the header it stores instead says, so that the
-- script never parses a job here.
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local keep = (now - tonumber(ARGV[5])) / 1000
local keep_attempts = ARGV[10] == '1'
local n = {retry = 0, snooze = 0, requeue = 0, kill = 0}
local ready, front, retry, sched = {}, {}, {}, {}
local again = remembered(ARGV[6], ARGV[7], ARGV[8])
if again then return again end
local stale_at = {}
for i = 11, #ARGV, 7 do
  local token, action, due, new = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if n[action] == nil or redis.call('HDEL', KEYS[1], token) == 0 then
    stale_at[#stale_at + 1] = (i - 11) / 7 + 1
  else
    n[action] = n[action] + 1
    local entry = ARGV[i + 6]
    if keep_attempts and entry ~= '' and (action == 'retry' or action == 'kill') then
      add_attempt(ARGV[i + 4], entry, keep)
    end
    if action == 'requeue' then
      front[#front + 1] = new
    elseif action == 'kill' then
      redis.call('ZADD', KEYS[6], now, new)
      end_unique(ARGV[i + 5], ARGV[i + 4])
      flow_end(new, 'dead', now)
    elseif due <= now then
      ready[#ready + 1] = new
    elseif action == 'retry' then
      retry[#retry + 1] = due
      retry[#retry + 1] = new
    else
      sched[#sched + 1] = due
      sched[#sched + 1] = new
    end
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[6]) end
push_pending(ready)
push_pending(front, true)
chunked('ZADD', KEYS[5], retry)
chunked('ZADD', KEYS[4], sched)
local moved = n.retry + n.snooze + n.requeue + n.kill
count(KEYS[7], 'active', -moved)
count(KEYS[7], 'failed', n.retry + n.kill, now, ttl)
count(KEYS[7], 'dead', n.kill)
local ev = {0, 0}
if n.kill > 0 then
  ev = trim_dead(KEYS[6], KEYS[7], tonumber(ARGV[5]), tonumber(ARGV[4]), 1000, 'dead_evicted')
end
-- Delayed retries and snoozes are announced too: an idle worker re-reads the next due time.
wake(#ready + #front + #retry / 2 + #sched / 2)
local out = {n.retry, n.snooze, n.requeue, n.kill, #stale_at, ev[1], ev[2]}
for _, p in ipairs(stale_at) do out[#out + 1] = p end
return remember(ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9]), out)
