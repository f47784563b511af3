-- fetch: promotes due jobs, then leases up to N pending jobs to one worker.
--
-- KEYS[1] pending list, KEYS[2] scheduled set, KEYS[3] retry set, KEYS[4] active set,
-- KEYS[5] leases hash, KEYS[6] paused flag
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] max jobs to lease, ARGV[4] lease deadline (ms),
-- ARGV[5] lease token, ARGV[6] max jobs to promote per set
-- Returns {paused (0|1), next due time in ms of a scheduled or retry job (-1: none),
--          promoted count, then id, attempt, envelope JSON for each leased job}.
-- Promotion is bounded per call so that a backlog of millions of due jobs drains over many
-- calls instead of one script that blocks Redis; the returned next due time lets an idle worker
-- sleep exactly until the next delayed job is due. Leasing costs one HMGET per job; the lease
-- records and deadlines are written with one HSET and one ZADD per batch.
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[6])

local function promote(zkey)
  local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  chunked('RPUSH', KEYS[1], due)
  chunked('ZREM', zkey, due)
  return #due
end

local function first_due(zkey)
  local r = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #r == 0 then return nil end
  return tonumber(r[2])
end

local promoted = promote(KEYS[2]) + promote(KEYS[3])
local next_due = -1
for _, zkey in ipairs({KEYS[2], KEYS[3]}) do
  local t = first_due(zkey)
  if t and (next_due < 0 or t < next_due) then next_due = t end
end

if redis.call('EXISTS', KEYS[6]) == 1 then
  return {1, next_due, promoted}
end

local out = {0, next_due, promoted}
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[3]))
if ids then
  local deadline, token = ARGV[4], ARGV[5]
  local leases, active = {}, {}
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', job_key(id), 'env', 'attempt', 'max', 'uniq')
    -- An id whose hash is gone was deleted by an operator while pending: skip it.
    if f[1] then
      local attempt = (tonumber(f[2]) or 0) + 1
      leases[#leases + 1] = id
      leases[#leases + 1] = attempt .. '|' .. (f[3] or attempt) .. '|' .. now .. '|' .. token
        .. '|' .. (f[4] or '')
      active[#active + 1] = deadline
      active[#active + 1] = id
      out[#out + 1] = id
      out[#out + 1] = attempt
      out[#out + 1] = f[1]
    end
  end
  chunked('HSET', KEYS[5], leases)
  chunked('ZADD', KEYS[4], active)
end
-- Jobs promoted here that this call did not take are for the other idle workers.
if promoted > 0 and redis.call('LLEN', KEYS[1]) > 0 then wake(promoted) end
return out
