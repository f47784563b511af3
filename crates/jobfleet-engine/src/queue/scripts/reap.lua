-- reap: takes back the jobs of workers whose lease expired (they died, hung or lost Redis).
--
-- KEYS[1] leases set, KEYS[2] pending list of the default priority, KEYS[3] dead set,
-- KEYS[4] stats hash
-- ARGV[1] queue prefix, ARGV[2] TTL of per-minute stats (s), ARGV[3] dead cap by count,
-- ARGV[4] dead cutoff (ms), ARGV[5] max workers per call, ARGV[6] '1' to keep the history of
-- failed attempts
-- Lease deadlines are compared with the server's clock (server_now), never the caller's.
-- Returns {requeued, killed, evicted by age, evicted by count, then the reaped workers' ids}.
-- The expired run counts as a failed attempt: it is written into the job's header with the
-- error, and a job that already used its last attempt goes to dead instead of running again,
-- so a job that kills its worker cannot loop forever. Requeued jobs go to the head of their
-- priority's pending list.
-- An entry without a readable header goes to dead inside a valid header that gives the reason.
-- A job of a flow that dies here reports its death to the flow's outbox (flow_end).
-- The expired run is added to the job's history of attempts, like a failure settle records.
-- An in-flight list left by a worker of an earlier release is reaped like a hash (held_jobs).
local now, ttl = server_now(), tonumber(ARGV[2])
local keep = (now - tonumber(ARGV[4])) / 1000
local keep_attempts = ARGV[6] == '1'
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
local front, dead = {}, {}
for _, worker in ipairs(expired) do
  local key = inflight_key(worker)
  -- The name goes into headers, which must stay UTF-8: anything but the characters of our
  -- own worker ids is shown as '?'.
  local name = (string.gsub(worker, '[^%w%-%._:]', '?'))
  local err = 'lease expired: worker ' .. name .. ' stopped renewing it'
  for _, job in ipairs(held_jobs(key)) do
    local j = parse_job(job)
    if j then
      j.attempts = math.min(j.attempts + 1, MAX_U32)
      j.failed = now
      j.err = err
      if keep_attempts then record_attempt(build_job(j), name, keep) end
      if j.attempts >= j.max then
        local stored = build_job(j)
        dead[#dead + 1] = now
        dead[#dead + 1] = stored
        end_unique(j.uniq, j.id)
        flow_end(stored, 'dead', now)
      else
        front[#front + 1] = build_job(j)
      end
    else
      -- Not a job we wrote: kept whole as the body of a valid dead entry, with the reason and
      -- the time, where an operator can see it (and named like the worker names such entries).
      dead[#dead + 1] = now
      dead[#dead + 1] = build_job({attempts = 1, max = 1,
        id = 'undecodable-' .. string.sub(redis.sha1hex(job), 1, 16), failed = now, uniq = '',
        err = 'undecodable payload: malformed job header (found by the reaper in the ' ..
          'in-flight jobs of worker ' .. name .. ')', body = '\n' .. job})
    end
  end
  redis.call('DEL', key)
  -- Tells the worker, should it come back, that its jobs were taken (see extend.lua).
  redis.call('SET', reaped_key(worker), now, 'EX', 86400)
end
chunked('ZREM', KEYS[1], expired)
push_pending(front, true)
chunked('ZADD', KEYS[3], dead)
local taken = #front + #dead / 2
count(KEYS[4], 'active', -taken)
count(KEYS[4], 'failed', taken, now, ttl)
count(KEYS[4], 'dead', #dead / 2)
local ev = {0, 0}
if #dead > 0 then
  ev = trim_dead(KEYS[3], KEYS[4], tonumber(ARGV[4]), tonumber(ARGV[3]), 1000, 'dead_evicted')
end
wake(#front)
local out = {#front, #dead / 2, ev[1], ev[2]}
for _, w in ipairs(expired) do out[#out + 1] = w end
return out
