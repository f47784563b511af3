-- trim_dead: evicts or purges dead jobs by age and count.
--
-- KEYS[1] dead set, KEYS[2] stats hash
-- ARGV[1] queue prefix, ARGV[2] cutoff (ms; deaths at or before it go), ARGV[3] cap by count,
-- ARGV[4] most jobs removed per rule and call, ARGV[5] stats field to count them under
-- ('dead_evicted' for the automatic caps, 'dead_purged' for an operator's purge)
-- Returns {removed by age, removed by count}; callers loop while a call removes a full batch.
return trim_dead(KEYS[1], KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
