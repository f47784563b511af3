-- fetch: promotes due jobs, then leases up to N pending jobs to one worker.
--
-- KEYS[1] pending list of the default priority, KEYS[2] scheduled set, KEYS[3] retry set,
-- KEYS[4] leases set, KEYS[5] paused flag, KEYS[6] stats hash, KEYS[7] this worker's in-flight
-- hash
-- ARGV[1] queue prefix, ARGV[2] now (ms), ARGV[3] max jobs to lease, ARGV[4] lease (ms, from the
-- server's clock),
-- ARGV[5] worker id, ARGV[6] max jobs to promote per set, ARGV[7] the first of the lease
-- tokens the worker reserved for this call (ARGV[3] of them, below 2^53)
-- Returns {paused (0|1), next due time in ms of a scheduled or retry job (-1: none),
--          promoted count, then the leased jobs, whose tokens are ARGV[7], ARGV[7] + 1, ...},
--          or {2, next due, promoted} when the call is a replay of one that already leased
--          jobs under these tokens (see below): nothing is leased.
-- Jobs are taken from the most urgent pending list that has any (pending_lists in the prelude,
-- KEYS[1] among them), so priorities are strict; a queue whose jobs all have the default
-- priority pays two LPOPs of empty lists per call (three when the batch is not filled),
-- whatever the batch size.
-- Leasing moves the jobs into the worker's in-flight hash, each under a lease token of its own,
-- and sets the worker's lease deadline in the leases set: a constant number of commands per
-- batch, whatever its size. The tokens come from the worker's process, which never hands one out
-- twice (see queue/tokens.rs): a sequence kept here would go back with a failover that
-- loses the last writes, and a worker could then ack another job's lease under an old token. So
-- an ack that names a token finds the lease it was given for or nothing (fencing). Promotion is
-- bounded per call so that a backlog of millions of due jobs drains over many calls instead of
-- one script that blocks Redis; the next due time lets an idle worker sleep exactly that long.
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[6])

local function promote(zkey)
  local due = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  push_pending(due)
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

if redis.call('EXISTS', KEYS[5]) == 1 then
  return {1, next_due, promoted}
end

-- A client may send a call again when it lost the reply (the cluster client retries after a
-- connection error), and the first run may have leased jobs under these tokens: leasing again
-- under them would overwrite those jobs in the hash and lose them. The first token is used
-- whenever a run leased anything, and a process never reserves it twice, so finding it means
-- a replay. The first run's jobs stay where they are; the worker, told so, finds them as
-- jobs it holds but never saw and hands them back (reconcile in worker/pool.rs).
if redis.call('HEXISTS', KEYS[7], ARGV[7]) == 1 then
  return {2, next_due, promoted}
end

local out = {0, next_due, promoted}
local want, jobs = tonumber(ARGV[3]), nil
for _, key in ipairs(pending_lists()) do
  local got = redis.call('LPOP', key, want)
  if got then
    if jobs then
      for _, job in ipairs(got) do jobs[#jobs + 1] = job end
    else
      jobs = got
    end
    want = want - #got
    if want <= 0 then break end
  end
end
if jobs then
  -- '%d' and not tostring: Lua 5.1 prints a number above 10^14 in exponent notation.
  local first = tonumber(ARGV[7])
  local fields = {}
  for i, job in ipairs(jobs) do
    fields[2 * i - 1] = string.format('%d', first + i - 1)
    fields[2 * i] = job
  end
  chunked('HSET', KEYS[7], fields)
  redis.call('ZADD', KEYS[4], server_now() + tonumber(ARGV[4]), ARGV[5])
  redis.call('DEL', reaped_key(ARGV[5]))
  count(KEYS[6], 'active', #jobs)
  for _, job in ipairs(jobs) do out[#out + 1] = job end
end
-- Jobs promoted here that this call did not take are for the other idle workers.
if promoted > 0 then
  for _, key in ipairs(pending_lists()) do
    if redis.call('LLEN', key) > 0 then
      wake(promoted)
      break
    end
  end
end
return out
