-- delete: removes one job from its queue, whatever its state.
--
-- KEYS[1] pending list, KEYS[2] scheduled set, KEYS[3] retry set, KEYS[4] active set,
-- KEYS[5] dead set, KEYS[6] leases hash
-- ARGV[1] queue prefix, ARGV[2] job id
-- Returns 1, or 0 when no such job exists. LREM scans the pending list; this is an
-- operator's command, never on a worker's path. A worker still running a deleted active job
-- finds its lease gone, and its ack is ignored as stale.
local id = ARGV[2]
local key = job_key(id)
local uniq = redis.call('HGET', key, 'uniq')
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('LREM', KEYS[1], 0, id)
for i = 2, 5 do redis.call('ZREM', KEYS[i], id) end
redis.call('HDEL', KEYS[6], id)
release_unique(uniq, id)
redis.call('DEL', key)
return 1
