-- enqueue: stores new jobs, one or many, in one queue.
--
-- KEYS[1] pending list of the default priority, KEYS[2] scheduled set, KEYS[3] stats hash
-- (jobs of the other priorities go to their own pending lists: pending_key in the prelude)
-- ARGV[1] queue prefix, ARGV[2] now (ms), then 5 values per job:
--   stored job, id, unique key ('' for none), unique TTL (ms), run at (ms; 0 or a time not
--   after now means "ready now")
-- Returns one value per job, in input order: '' when it was stored, or the id of the job that
-- holds its unique key (a duplicate, not stored).
local now = tonumber(ARGV[2])
local out, ready, sched = {}, {}, {}
local created = 0
for i = 3, #ARGV, 5 do
  local job, id, uniq, ttl, run_at = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4])
  local holder = nil
  if uniq ~= '' and not redis.call('SET', unique_key(uniq), id, 'NX', 'PX', ttl) then
    holder = redis.call('GET', unique_key(uniq)) or id
  end
  if holder then
    out[#out + 1] = holder
  else
    if run_at > now then
      sched[#sched + 1] = run_at
      sched[#sched + 1] = job
    else
      ready[#ready + 1] = job
    end
    created = created + 1
    out[#out + 1] = ''
  end
end
push_pending(ready)
chunked('ZADD', KEYS[2], sched)
count(KEYS[3], 'enqueued', created)
-- Scheduled jobs are announced too, so idle workers learn the new next due time.
wake(#ready + #sched / 2)
return out
