-- HoldRecipient: KEYS[1] hold end (µs on Redis's clock); ARGV 1 duration µs. Keeps the later end.
if redis.replicate_commands then redis.replicate_commands() end -- TIME before writes on Redis < 5
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = math.max(now + tonumber(ARGV[1]), tonumber(redis.call("GET", KEYS[1]) or "0"))
redis.call("SET", KEYS[1], string.format("%.0f", untl), "PX", math.floor((untl - now) / 1000) + 1)
return 1
