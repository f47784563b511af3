-- ack: completes leased jobs; nothing of them is kept but the opt-in history (their history
-- of failed attempts goes too).
--
-- KEYS[1] the worker's in-flight hash, KEYS[2] leases set, KEYS[3] stats hash,
-- KEYS[4] completed history set
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] history cap (0: keep no history),
-- ARGV[4] TTL of per-minute stats (s), ARGV[5] worker id, ARGV[6] call id (the same for every
-- retry of one call), ARGV[7] how long the reply is remembered (s), ARGV[8] '1' when failed
-- attempts are kept (their history is deleted with the job), then 3 values per job: its lease
-- token (from fetch.lua), its id, and what else its end touches: '' for nothing (the common
-- case, which costs one HDEL and no look at the job), else letters (`a` a history of failed
-- attempts, `f` a flow's outbox, `u` a unique lock), '|' and its unique key (see calls.rs,
-- `ack_extra`)
-- A job of a flow reports its success to the flow's outbox (flow_end in the prelude).
-- Returns {acked, stale, then the 1-based positions of the stale jobs among the call's jobs}, so
-- that the caller counts a stale result as stale and never as completed. A token that is no
-- longer in this worker's in-flight hash was taken back by the reaper after the lease expired
-- (its job maybe leased again, under another token) or deleted, so the ack is stale and
-- changes nothing.
local now, cap, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local again = remembered(ARGV[5], 'ack', ARGV[6])
if again then return again end
local acked, history, stale_at = 0, {}, {}
local keep_attempts = ARGV[8] == '1'
local function finish(job, id, extra)
  local flags, uniq = string.match(extra, '^(%l*)|(.*)$')
  if not flags then return end
  if string.find(flags, 'u', 1, true) then end_unique(uniq, id) end
  if string.find(flags, 'f', 1, true) then flow_end(job, 'succeeded', now) end
  -- `a` is set only for a job whose header gives this id and a failed attempt (ack_extra), so
  -- the history is found by the id alone, without reading the job.
  if keep_attempts and string.find(flags, 'a', 1, true) then
    redis.call('DEL', attempts_key(id))
  end
end
-- Only a flow's outbox wants the stored job; a unique lock and the history of attempts are
-- found by the job's id.
local function wants_job(extra)
  local flags = string.match(extra, '^(%l*)|')
  return flags ~= nil and string.find(flags, 'f', 1, true) ~= nil
end
for i = 9, #ARGV, 3 do
  local token, extra = ARGV[i], ARGV[i + 2]
  local job, done = nil, false
  if extra ~= '' and wants_job(extra) then
    job = redis.call('HGET', KEYS[1], token)
    done = job ~= false
    if done then redis.call('HDEL', KEYS[1], token) end
  else
    done = redis.call('HDEL', KEYS[1], token) == 1
  end
  if done then
    acked = acked + 1
    if extra ~= '' then finish(job, ARGV[i + 1], extra) end
    if cap > 0 then
      history[#history + 1] = now
      history[#history + 1] = ARGV[i + 1]
    end
  else
    stale_at[#stale_at + 1] = (i - 9) / 3 + 1
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[5]) end
if cap > 0 and acked > 0 then
  chunked('ZADD', KEYS[4], history)
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(cap + 1))
end
count(KEYS[3], 'processed', acked, now, ttl)
count(KEYS[3], 'active', -acked)
local out = {acked, #stale_at}
for _, p in ipairs(stale_at) do out[#out + 1] = p end
return remember(ARGV[5], 'ack', ARGV[6], tonumber(ARGV[7]), out)
