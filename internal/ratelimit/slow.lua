-- SlowSender: KEYS[1] slow factor; ARGV 1 factor, 2 ttl ms. Keeps the smaller factor and
-- the longer remaining TTL of overlapping penalties.
local cur = tonumber(redis.call("GET", KEYS[1]) or "1")
local f = math.min(cur, tonumber(ARGV[1]))
local ttl = math.max(redis.call("PTTL", KEYS[1]), tonumber(ARGV[2]))
redis.call("SET", KEYS[1], tostring(f), "PX", ttl)
return 1
