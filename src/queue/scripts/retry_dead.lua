-- retry_dead: moves dead jobs back to pending with a fresh set of attempts.
--
-- KEYS[1] dead set, KEYS[2] pending list
-- ARGV[1] queue prefix, ARGV[2] start rank, ARGV[3] how many entries to scan,
-- ARGV[4] kind filter ('' for every kind), ARGV[5] dry run (1: only count),
-- then optional explicit job ids (when given, ranks and the filter are ignored)
-- Returns {matched, scanned}. Matched entries are removed from the set unless dry run, so the
-- caller's next start rank is start + scanned - (dry run and 0 or matched).
local kind, dry = ARGV[4], ARGV[5] == '1'
local ids
if #ARGV > 5 then
  ids = {}
  for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  local start = tonumber(ARGV[2])
  ids = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1)
end
local moved = {}
for _, id in ipairs(ids) do
  local key = job_key(id)
  local in_dead = redis.call('ZSCORE', KEYS[1], id)
  if in_dead and (kind == '' or redis.call('HGET', key, 'kind') == kind) then
    moved[#moved + 1] = id
    if not dry then
      redis.call('HSET', key, 'attempt', 0)
      redis.call('HDEL', key, 'dead_at')
    end
  end
end
if not dry and #moved > 0 then
  chunked('ZREM', KEYS[1], moved)
  chunked('RPUSH', KEYS[2], moved)
  wake(#moved)
end
return {#moved, #ids}
