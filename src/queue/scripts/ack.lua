-- ack: completes leased jobs and deletes their data.
--
-- KEYS[1] active set, KEYS[2] leases hash, KEYS[3] stats hash, KEYS[4] completed history set
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] history cap (0: keep no history),
-- ARGV[4] TTL of per-minute stats (s), then pairs of job id and lease token
-- Returns {acked, stale}. A job whose lease token no longer matches (it was re-leased after
-- its lease expired, handed back, or deleted) is stale and left untouched: no zombie acks.
-- Everything but the unique-key release is one command per batch: the lease carries the
-- unique key, so no job hash is read.
local now, cap, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local ids, tokens = {}, {}
for i = 5, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
end
local leases = read_leases(KEYS[2], ids)
local done, keys, history = {}, {}, {}
for i, id in ipairs(ids) do
  local l = leases[i]
  if l and l.token == tokens[i] then
    done[#done + 1] = id
    keys[#keys + 1] = job_key(id)
    history[#history + 1] = now
    history[#history + 1] = id
    release_unique(l.uniq, id)
  end
end
chunked('DEL', nil, keys)
chunked('HDEL', KEYS[2], done)
chunked('ZREM', KEYS[1], done)
if cap > 0 and #done > 0 then
  chunked('ZADD', KEYS[4], history)
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(cap + 1))
end
count(KEYS[3], 'processed', #done, now, ttl)
return {#done, #ids - #done}
