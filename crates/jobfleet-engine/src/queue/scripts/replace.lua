-- replace: an operator's move of exact stored jobs: retry from dead, run now, kill, or delete.
--
-- KEYS[1] the key the jobs are in (scheduled, retry, dead, a worker's in-flight key, or the
-- default pending list standing for every level's), KEYS[2] pending list of the default
-- priority, KEYS[3] stats hash, KEYS[4] dead set
-- ARGV[1] queue prefix, ARGV[2] 'inflight' or 'zset' (what KEYS[1] is), or 'pending' (each job
-- is in the pending list of its own priority), ARGV[3] action ('pending': move to the tail of
-- its priority's pending list; 'dead': move to the dead set, scored ARGV[4]; 'delete':
-- remove), ARGV[4] now (ms), then 4 values per job:
--   the stored job, the job to push instead ('' to keep it), id, unique key
-- Returns the number of jobs moved. A job that is no longer where it was found (a worker took
-- it meanwhile) is skipped, so an operator's action never duplicates a job. A job deleted or
-- killed gives up its unique lock, as a job that dies does; a job deleted takes its history of
-- failed attempts with it.
local kind, action, now = ARGV[2], ARGV[3], ARGV[4]
local moved, push, dead = 0, {}, {}
for i = 5, #ARGV, 4 do
  local job, new = ARGV[i], ARGV[i + 1]
  local removed
  if kind == 'pending' then
    removed = redis.call('LREM', pending_key(job), 1, job)
  elseif kind == 'inflight' then
    removed = take_held(KEYS[1], job)
  else
    removed = redis.call('ZREM', KEYS[1], job)
  end
  if removed == 1 then
    moved = moved + 1
    if new == '' then new = job end
    if action == 'pending' then
      push[#push + 1] = new
    else
      release_unique(ARGV[i + 3], ARGV[i + 2])
      if action == 'delete' then forget_attempts(job) end
      -- A flow's child that an operator kills or deletes will not run: it counts as failed.
      flow_end(job, 'dead', tonumber(now))
      if action == 'dead' then
        dead[#dead + 1] = now
        dead[#dead + 1] = new
      end
    end
  end
end
push_pending(push)
chunked('ZADD', KEYS[4], dead)
count(KEYS[3], 'dead', #dead / 2)
-- An operator taking a job from a worker's in-flight hash makes it no longer active.
if kind == 'inflight' then redis.call('HINCRBY', KEYS[3], 'active', -moved) end
wake(#push)
return moved
