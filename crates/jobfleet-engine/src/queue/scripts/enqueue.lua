-- enqueue: stores new jobs, one or many, in one queue.
--
-- KEYS[1] pending list of the default priority, KEYS[2] scheduled set, KEYS[3] stats hash
-- (jobs of the other priorities go to their own pending lists: pending_key in the prelude)
-- ARGV[1] queue prefix, ARGV[2] now (ms), then 2 values per job: the stored job, and its
--   options: '' for a job ready now without a unique key (the common case, which costs no
--   parsing), else "<run at ms>|<unique TTL ms>|<id>|<unique key>" (a run at of 0 or not after
--   now means "ready now"; an empty unique key means none; ids hold no '|')
-- Returns the duplicates only, as pairs: the 1-based position of the job among the call's
-- jobs and the id of the job that holds its unique key (not stored). Every other job was
-- stored, so a bulk enqueue gets an empty reply.
local now = tonumber(ARGV[2])
local out, ready, sched = {}, {}, {}
local created = 0
for i = 3, #ARGV, 2 do
  local job, opts = ARGV[i], ARGV[i + 1]
  if opts == '' then
    ready[#ready + 1] = job
    created = created + 1
  else
    local run_at, ttl, id, uniq = string.match(opts, '^(%d+)|(%d+)|([^|]*)|(.*)$')
    if not run_at then return redis.error_reply('ERR enqueue: bad options ' .. opts) end
    run_at = tonumber(run_at)
    local holder = nil
    if uniq ~= '' and not redis.call('SET', unique_key(uniq), id, 'NX', 'PX', ttl) then
      holder = redis.call('GET', unique_key(uniq)) or id
    end
    if holder then
      out[#out + 1] = (i - 3) / 2 + 1
      out[#out + 1] = holder
    else
      if run_at > now then
        sched[#sched + 1] = run_at
        sched[#sched + 1] = job
      else
        ready[#ready + 1] = job
      end
      created = created + 1
    end
  end
end
push_pending(ready)
chunked('ZADD', KEYS[2], sched)
count(KEYS[3], 'enqueued', created)
-- Scheduled jobs are announced too, so idle workers learn the new next due time.
wake(#ready + #sched / 2)
return out
