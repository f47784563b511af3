-- Shared helpers, prepended to every jobfleet script (see src/queue/scripts.rs).
--
-- Every script works on the keys of exactly one queue. KEYS carries the queue's fixed keys;
-- ARGV[1] is always the queue prefix `ns:{queue}:`, from which the per-worker and per-minute
-- keys (`inflight:<worker>`, `unique:<key>`, `stats:<minute>`) are built with the same
-- suffixes as src/queue/keys.rs. Because they all share the `{queue}` hash tag, they live in the
-- same Redis Cluster slot.
--
-- A job is one string (src/queue/payload.rs):
--   jf|<attempts>|<max>|<id>|<failed at>|<len>:<unique key><len>:<error>\n<envelope JSON>
-- with its priority level right after 'jf' when it is not the default (2): 'jf0|', 'jf1|',
-- 'jf3|'. Moving a job between states is moving that string; only the reaper reads its header.
local prefix = ARGV[1]

local function inflight_key(worker) return prefix .. 'inflight:' .. worker end

-- A worker's in-flight key is a hash of lease token -> stored job (the worker's process
-- reserves the tokens for each fetch.lua call), so that ack and settle remove a job in O(1) whatever the number it holds. A worker
-- of an earlier release held its jobs in a list under the same name; the readers that may meet
-- one it left behind (the reaper, remove, an operator's move) accept both.
local function held_jobs(key)
  local t = redis.call('TYPE', key)['ok']
  if t == 'hash' then return redis.call('HVALS', key) end
  if t == 'list' then return redis.call('LRANGE', key, 0, -1) end
  return {}
end

local function held_count(key)
  local t = redis.call('TYPE', key)['ok']
  if t == 'hash' then return redis.call('HLEN', key) end
  if t == 'list' then return redis.call('LLEN', key) end
  return 0
end

-- Takes one exact stored job out of an in-flight key of either kind; returns 1 when it was
-- there. A hash is searched by value: only an operator's move asks, never a worker's path.
local function take_held(key, job)
  local t = redis.call('TYPE', key)['ok']
  if t == 'list' then return redis.call('LREM', key, 1, job) end
  if t ~= 'hash' then return 0 end
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if all[i + 1] == job then return redis.call('HDEL', key, all[i]) end
  end
  return 0
end
local function reaped_key(worker) return prefix .. 'reaped:' .. worker end
local function reply_key(worker, lane) return prefix .. 'reply:' .. worker .. ':' .. lane end

-- Replies of ack and settle are remembered per worker and lane as "<call id>|<n>,<n>,...", so
-- that a call retried after its reply was lost (a dropped connection, a restarted Redis) returns
-- what the first one did instead of finding its jobs gone and calling them stale.
local function remembered(worker, lane, call)
  local memo = redis.call('GET', reply_key(worker, lane))
  if not memo then return nil end
  local id, values = string.match(memo, '^([^|]*)|(.*)$')
  if id ~= call then return nil end
  local out = {}
  for n in string.gmatch(values, '%d+') do out[#out + 1] = tonumber(n) end
  return out
end

local function remember(worker, lane, call, ttl, out)
  redis.call('SET', reply_key(worker, lane), call .. '|' .. table.concat(out, ','), 'EX', ttl)
  return out
end
local function unique_key(k) return prefix .. 'unique:' .. k end
local function minute_key(now_ms) return prefix .. 'stats:' .. math.floor(now_ms / 60000) end

-- Runs `cmd key item...` in chunks, because unpack() of more than a few thousand values
-- fails with "too many results to unpack". Chunks are even-sized so that flat score/member
-- pairs for ZADD never split.
local function chunked(cmd, key, items)
  local n = #items
  local i = 1
  while i <= n do
    local j = math.min(i + 999, n)
    redis.call(cmd, key, unpack(items, i, j))
    i = j + 1
  end
end

-- The largest attempt count a header may hold (Rust reads it as a u32).
local MAX_U32 = 4294967295

-- A header number as Rust reads it: digits only, and at most `max`. Longer digit strings would
-- turn into floats here and be written back as "1e+30", which no reader parses.
local function header_number(s, max)
  if #s > 19 then return nil end
  local n = tonumber(s)
  if n == nil or n > max then return nil end
  return n
end

-- Splits a stored job into its header fields and its body (which keeps its leading newline).
-- Returns nil for anything that is not a header that Rust would also read.
local function parse_job(p)
  local attempts, max, id, failed, ulen, pos =
    string.match(p, '^jf[0-3]?|(%d+)|(%d+)|([^|]*)|(%d+)|(%d+):()')
  if not attempts then return nil end
  attempts, max = header_number(attempts, MAX_U32), header_number(max, MAX_U32)
  ulen = header_number(ulen, #p)
  if not (attempts and max and ulen and #failed <= 19) then return nil end
  local uniq = string.sub(p, pos, pos + ulen - 1)
  local elen, epos = string.match(p, '^(%d+):()', pos + ulen)
  if not elen then return nil end
  elen = header_number(elen, #p)
  if not elen or string.sub(p, epos + elen, epos + elen) ~= '\n' then return nil end
  local level = string.match(p, '^jf([013]?)')
  return {attempts = attempts, max = max, id = id, failed = failed, level = level,
    uniq = uniq, err = string.sub(p, epos, epos + elen - 1), body = string.sub(p, epos + elen)}
end

local function build_job(j)
  return 'jf' .. (j.level or '') .. '|' .. j.attempts .. '|' .. j.max .. '|' .. j.id .. '|' ..
    j.failed .. '|' .. #j.uniq .. ':' .. j.uniq .. #j.err .. ':' .. j.err .. j.body
end

-- Releases a unique lock, but only while it still names this job.
local function release_unique(uniq, id)
  if uniq and uniq ~= '' then
    local k = unique_key(uniq)
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
end

-- Failed attempts kept per job, and the key of a job's history of them.
local ATTEMPTS_KEPT = 25
local function attempts_key(id) return prefix .. 'attempts:' .. id end

-- Appends an entry "<failed at ms>|<attempt>|<worker>|<error>" to the bounded history of failed
-- attempts of the job `id`, newest first, kept `keep_s` seconds from the first failure (as
-- long as a dead job is). This is on the path of every failure, so it costs one command in the
-- common case: the TTL is set when the list is made and the list is trimmed only once it has
-- grown past the cap.
local function add_attempt(id, entry, keep_s)
  local k = attempts_key(id)
  local n = redis.call('LPUSH', k, entry)
  if n == 1 then
    redis.call('EXPIRE', k, math.max(math.floor(keep_s), 1))
  elseif n > ATTEMPTS_KEPT then
    redis.call('LTRIM', k, 0, ATTEMPTS_KEPT - 1)
  end
end

-- Appends a failed attempt of `stored` (its header already updated with the failure) to the
-- job's history, as add_attempt does, reading the entry off the header.
local function record_attempt(stored, worker, keep_s)
  local j = parse_job(stored)
  if not j or j.id == '' then return end
  add_attempt(j.id, j.failed .. '|' .. j.attempts .. '|' .. worker .. '|' .. j.err, keep_s)
end

-- Deletes the history of attempts of a stored job that leaves the store for good (it
-- completed, was deleted or evicted). Only a job that failed before has one.
local function forget_attempts(job)
  local attempts, id = string.match(job, '^jf[0-3]?|(%d+)|%d+|([^|]*)|')
  if id and id ~= '' and attempts ~= '0' then redis.call('DEL', attempts_key(id)) end
end

-- Releases a job's unique lock when the job ends by itself (it completed or died). The lock a
-- producer's own id implies ('id:<id>') is kept until its TTL, so that a producer retrying a
-- request whose reply it lost is answered with the first job even after that job ran.
local function end_unique(uniq, id)
  if uniq and string.sub(uniq, 1, 3) ~= 'id:' then release_unique(uniq, id) end
end

-- Adds n to a lifetime counter and, when minute_ttl is given, to the per-minute history.
local function count(stats_key, field, n, now_ms, minute_ttl)
  if n ~= 0 then
    redis.call('HINCRBY', stats_key, field, n)
    if minute_ttl then
      local mk = minute_key(now_ms)
      redis.call('HINCRBY', mk, field, n)
      redis.call('EXPIRE', mk, minute_ttl)
    end
  end
end

-- Enforces the dead set's caps: entries that died at or before `cutoff`, then the oldest
-- beyond `max_count`, at most `limit` of each per call so that one call never blocks Redis
-- for long. Every eviction is counted under `field`; the caller logs and exports the returned
-- numbers, so no eviction is silent.
local function trim_dead(dead_key, stats_key, cutoff, max_count, limit, field)
  local old = redis.call('ZRANGEBYSCORE', dead_key, '-inf', cutoff, 'LIMIT', 0, limit)
  chunked('ZREM', dead_key, old)
  local by_count = {}
  local excess = redis.call('ZCARD', dead_key) - max_count
  if excess > 0 then
    by_count = redis.call('ZRANGE', dead_key, 0, math.min(excess, limit) - 1)
    chunked('ZREM', dead_key, by_count)
  end
  for _, job in ipairs(old) do forget_attempts(job) end
  for _, job in ipairs(by_count) do forget_attempts(job) end
  count(stats_key, field, #old + #by_count)
  return {#old, #by_count}
end

-- The server's clock in ms. Lease deadlines are set and checked with it, so that clock skew
-- between worker hosts cannot make one worker reap another's live jobs.
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Pushes jobs to the head of a list keeping their order (LPUSH alone would reverse them).
local function push_front(list_key, items)
  local reversed = {}
  for i = #items, 1, -1 do reversed[#reversed + 1] = items[i] end
  chunked('LPUSH', list_key, reversed)
end

-- The pending list of a stored job: `pending:<level>` for the levels 0, 1 and 3 written right
-- after 'jf', `pending` for the default level 2 (whose header names no level) and for anything
-- that is no header of ours, which a worker then dead-letters. As QueueKeys::pending_at.
local function pending_key(job)
  local b = string.byte(job, 3)
  local level = b == 48 or b == 49 or b == 51
  if level and string.sub(job, 1, 2) == 'jf' and string.byte(job, 4) == 124 then
    return prefix .. 'pending:' .. string.char(b)
  end
  return prefix .. 'pending'
end

-- The pending lists of every level, most urgent first: the order fetch takes them in.
local function pending_lists()
  return {prefix .. 'pending:0', prefix .. 'pending:1', prefix .. 'pending', prefix .. 'pending:3'}
end

-- Appends jobs to the tail of their levels' pending lists (or, with `front`, to the head,
-- keeping their order), so each level stays first in, first out.
local function push_pending(items, front)
  if #items == 0 then return end
  local by_key, order = {}, {}
  for _, job in ipairs(items) do
    local k = pending_key(job)
    local list = by_key[k]
    if not list then
      list = {}
      by_key[k] = list
      order[#order + 1] = k
    end
    list[#list + 1] = job
  end
  for _, k in ipairs(order) do
    if front then push_front(k, by_key[k]) else chunked('RPUSH', k, by_key[k]) end
  end
end

-- Tells idle workers of this queue that jobs became pending or got a due time, so they fetch
-- again (and learn the next due time) instead of waiting for their poll interval.
local function wake(n)
  if n > 0 then redis.call('PUBLISH', prefix .. 'wake', n) end
end

-- The live holders of a limit's running slots: members "<worker>|<job id>" of `running` whose
-- worker still holds a lease (by the server's clock) in `leases`. A member whose worker lost
-- its lease (it died, or the reaper took its jobs) is dropped, so its slot comes free.
local function live_holders(running, leases, now)
  local live = 0
  for _, member in ipairs(redis.call('ZRANGE', running, 0, -1)) do
    local w = string.match(member, '^(.*)|[^|]*$')
    local deadline = w and redis.call('ZSCORE', leases, w)
    if deadline and tonumber(deadline) > now then
      live = live + 1
    else
      redis.call('ZREM', running, member)
    end
  end
  return live
end

-- The earliest time a new start keeps every window of `window` ms at `n` starts or fewer,
-- counting the starts made (`starts`) and the starts promised to waiting jobs
-- (`reserved`): the n-th latest of them all plus the window, or now when there are fewer.
local function next_start(starts, reserved, n, window, now)
  local times = {}
  for _, key in ipairs({starts, reserved}) do
    local r = redis.call('ZRANGE', key, -n, -1, 'WITHSCORES')
    for i = 2, #r, 2 do times[#times + 1] = tonumber(r[i]) end
  end
  if #times < n then return now end
  table.sort(times)
  return math.max(now, times[#times - n + 1] + window)
end

-- Flows (src/queue/flow.rs). A job that belongs to a flow carries `"flow":{"queue":..,"id":..,
-- "member":..}` in its envelope. When it ends for good (it completed, or it died), the script
-- that ends it writes "<outcome>|<flow queue>|<flow id>|<member>" into this queue's flow outbox
-- in the same step, fenced like that step; a worker then delivers it to the flow, whose queue
-- may be in another slot. Only envelopes that hold the text '"flow":' are decoded, so a job of
-- no flow costs one plain search.
local FLOW_SAFE = '^[%w_%.:%-]+$'
local function flow_end(job, outcome, now)
  if not string.find(job, '"flow":', 1, true) then return end
  local j = parse_job(job)
  if not j then return end
  local ok, env = pcall(cjson.decode, j.body)
  if not ok or type(env) ~= 'table' or type(env.flow) ~= 'table' then return end
  local f = env.flow
  for _, part in ipairs({f.queue, f.id, f.member}) do
    if type(part) ~= 'string' or not string.match(part, FLOW_SAFE) then return end
  end
  redis.call('ZADD', prefix .. 'flowbox', now,
    outcome .. '|' .. f.queue .. '|' .. f.id .. '|' .. f.member)
end
