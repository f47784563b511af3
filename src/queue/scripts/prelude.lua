-- Shared helpers, prepended to every jobfleet script (see src/queue/scripts.rs).
--
-- Every script works on the keys of exactly one queue. KEYS carries the queue's fixed keys;
-- ARGV[1] is always the queue prefix `ns:{queue}:`, from which the per-job keys (`job:<id>`,
-- `unique:<key>`, `stats:<minute>`) are built with the same suffixes as src/queue/keys.rs.
-- Because they all share the `{queue}` hash tag, they live in the same Redis Cluster slot.
local prefix = ARGV[1]

local function job_key(id) return prefix .. 'job:' .. id end
local function unique_key(k) return prefix .. 'unique:' .. k end
local function minute_key(now_ms) return prefix .. 'stats:' .. math.floor(now_ms / 60000) end

-- Runs `cmd [key] item...` in chunks, because unpack() of more than a few thousand values
-- fails with "too many results to unpack". Chunks are even-sized so that flat pairs
-- (score/member for ZADD, field/value for HSET) never split. With key nil the items are the
-- keys themselves (DEL). Returns the replies of array-returning commands concatenated.
local function chunked(cmd, key, items)
  local n = #items
  local i = 1
  local out = {}
  while i <= n do
    local j = math.min(i + 999, n)
    local r
    if key then
      r = redis.call(cmd, key, unpack(items, i, j))
    else
      r = redis.call(cmd, unpack(items, i, j))
    end
    if type(r) == 'table' then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
    i = j + 1
  end
  return out
end

-- A lease is one field of the queue's `leases` hash:
--   id -> "attempt|max|started_ms|token|unique key"
-- It is the only record that a job is active; the job hash is not written when it is leased.
-- Tokens never contain '|'; the unique key, last, may.
local function parse_lease(v)
  if not v then return nil end
  local attempt, max, started, token, uniq = string.match(v, '^(%d+)|(%d+)|(%d+)|([^|]*)|(.*)$')
  if not attempt then return nil end
  return {attempt = tonumber(attempt), max = tonumber(max), started = started, token = token,
    uniq = uniq}
end

-- Reads the leases of `ids` (in one HMGET per chunk) and returns them parsed, by position.
local function read_leases(leases_key, ids)
  local raw = chunked('HMGET', leases_key, ids)
  local out = {}
  for i = 1, #ids do out[i] = parse_lease(raw[i]) end
  return out
end

-- Releases a unique lock, but only while it still names this job.
local function release_unique(uniq, id)
  if uniq and uniq ~= '' then
    local k = unique_key(uniq)
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
end

-- Adds n to a lifetime counter and, when minute_ttl is given, to the per-minute history.
local function count(stats_key, field, n, now_ms, minute_ttl)
  if n > 0 then
    redis.call('HINCRBY', stats_key, field, n)
    if minute_ttl then
      local mk = minute_key(now_ms)
      redis.call('HINCRBY', mk, field, n)
      redis.call('EXPIRE', mk, minute_ttl)
    end
  end
end

-- Deletes dead jobs (their hashes and their entries), at most `limit` of them.
local function drop_dead(dead_key, ids)
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = job_key(id) end
  chunked('DEL', nil, keys)
  chunked('ZREM', dead_key, ids)
  return #ids
end

-- Enforces the dead set's caps: first entries that died at or before `cutoff`, then the
-- oldest entries beyond `max_count`, at most `limit` of each per call. Every eviction is
-- counted under `field` in the stats hash; the caller logs and exports the returned numbers.
local function trim_dead(dead_key, stats_key, cutoff, max_count, limit, field)
  local old = redis.call('ZRANGEBYSCORE', dead_key, '-inf', cutoff, 'LIMIT', 0, limit)
  local by_age = drop_dead(dead_key, old)
  local by_count = 0
  local excess = redis.call('ZCARD', dead_key) - max_count
  if excess > 0 then
    by_count = drop_dead(dead_key, redis.call('ZRANGE', dead_key, 0, math.min(excess, limit) - 1))
  end
  count(stats_key, field, by_age + by_count)
  return {by_age, by_count}
end

-- Tells idle workers of this queue that n jobs became pending or got a due time, so they
-- fetch again (and learn the next due time) instead of waiting for their poll interval.
local function wake(n)
  if n > 0 then redis.call('PUBLISH', prefix .. 'wake', n) end
end
