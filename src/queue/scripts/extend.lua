-- extend: moves the lease deadline of jobs a worker still holds.
--
-- KEYS[1] active set, KEYS[2] leases hash
-- ARGV[1] queue prefix, ARGV[2] new lease deadline (ms), then pairs of job id and lease token
-- Returns the ids whose lease is no longer this worker's (expired and re-leased, settled, or
-- deleted); their deadlines are left alone.
local deadline = ARGV[2]
local ids, tokens = {}, {}
for i = 3, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  tokens[#tokens + 1] = ARGV[i + 1]
end
local leases = read_leases(KEYS[2], ids)
local keep, lost = {}, {}
for i, id in ipairs(ids) do
  local l = leases[i]
  if l and l.token == tokens[i] then
    keep[#keep + 1] = deadline
    keep[#keep + 1] = id
  else
    lost[#lost + 1] = id
  end
end
local i = 1
while i <= #keep do
  local j = math.min(i + 999, #keep)
  redis.call('ZADD', KEYS[1], 'XX', unpack(keep, i, j))
  i = j + 1
end
return lost
