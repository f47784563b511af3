-- enqueue: stores new jobs, one or many, in one queue.
--
-- KEYS[1] pending list, KEYS[2] scheduled set, KEYS[3] stats hash
-- ARGV[1] queue prefix, ARGV[2] now (ms), then 8 values per job:
--   id, envelope JSON, kind, max attempts, unique key ('' for none), unique TTL (ms),
--   run at (ms; 0 or a time not after now means "ready now"),
--   check id (1 when the producer chose the id, so it may exist already; 0 for a fresh ULID)
-- Returns a flat array with two values per job, in input order: the job id and 1 when it was
-- created, or the id of the existing job and 0 for a duplicate (the same id is already stored,
-- or its unique key is held by a job that still exists).
-- The job hash holds env, kind, max, enq_at and, once a run has ended, attempt, error and the
-- failure times. A job's state is where its id is: pending list, scheduled, retry or dead set,
-- or the leases hash while active.
local now = tonumber(ARGV[2])
local out, ready, sched = {}, {}, {}
local created = 0
for i = 3, #ARGV, 8 do
  local id, env, kind, max, uniq = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local ttl, run_at = ARGV[i + 5], tonumber(ARGV[i + 6])
  local key = job_key(id)
  local existing = nil
  if ARGV[i + 7] == '1' and redis.call('EXISTS', key) == 1 then
    existing = id
  elseif uniq ~= '' then
    local holder = redis.call('GET', unique_key(uniq))
    if holder and redis.call('EXISTS', job_key(holder)) == 1 then existing = holder end
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    if run_at > now then
      sched[#sched + 1] = run_at
      sched[#sched + 1] = id
    else
      ready[#ready + 1] = id
    end
    if uniq ~= '' then
      redis.call('HSET', key, 'env', env, 'kind', kind, 'max', max, 'enq_at', now, 'uniq', uniq)
      redis.call('SET', unique_key(uniq), id, 'PX', ttl)
    else
      redis.call('HSET', key, 'env', env, 'kind', kind, 'max', max, 'enq_at', now)
    end
    created = created + 1
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
chunked('RPUSH', KEYS[1], ready)
chunked('ZADD', KEYS[2], sched)
count(KEYS[3], 'enqueued', created)
-- Scheduled jobs are announced too, so idle workers learn the new next due time.
wake(#ready + #sched / 2)
return out
