-- reap: returns jobs whose lease expired (their worker died or hung) to pending.
--
-- KEYS[1] active set, KEYS[2] leases hash, KEYS[3] pending list, KEYS[4] dead set,
-- KEYS[5] stats hash
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] TTL of per-minute stats (s),
-- ARGV[4] dead cap by count, ARGV[5] dead cutoff (ms), ARGV[6] max jobs per call
-- Returns {requeued, killed, evicted by age, evicted by count, then the reaped ids}.
-- The expired attempt counts as a failure: a job that already used its last attempt goes to
-- dead instead of running again, so a job that kills its worker cannot loop forever.
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
local leases = read_leases(KEYS[2], expired)
local front, ids = {}, {}
local killed = 0
for i, id in ipairs(expired) do
  local key = job_key(id)
  local l = leases[i]
  if l and redis.call('EXISTS', key) == 1 then
    ids[#ids + 1] = id
    local worker = string.match(l.token, '^(.*)#') or l.token
    local err = 'lease expired: worker ' .. worker .. ' stopped renewing it'
    if l.attempt >= l.max then
      redis.call('HSET', key, 'attempt', l.attempt, 'error', err, 'failed_at', now, 'dead_at', now)
      redis.call('ZADD', KEYS[4], now, id)
      release_unique(l.uniq, id)
      killed = killed + 1
    else
      redis.call('HSET', key, 'attempt', l.attempt, 'error', err, 'failed_at', now)
      front[#front + 1] = id
    end
  end
end
chunked('HDEL', KEYS[2], expired)
chunked('ZREM', KEYS[1], expired)
chunked('LPUSH', KEYS[3], front)
count(KEYS[5], 'failed', #ids, now, ttl)
count(KEYS[5], 'dead', killed)
local ev = {0, 0}
if killed > 0 then
  ev = trim_dead(KEYS[4], KEYS[5], tonumber(ARGV[5]), tonumber(ARGV[4]), 1000, 'dead_evicted')
end
wake(#front)
local out = {#front, killed, ev[1], ev[2]}
for _, id in ipairs(ids) do out[#out + 1] = id end
return out
