-- Count a business-initiated recipient against a Meta business portfolio's messaging limit,
-- shared by all its numbers: distinct recipients per moving window. A recipient counted
-- within the window costs nothing more. Runs before the number's own reservation (whose keys
-- live in another cluster slot), so a recipient may be counted for a send that then waits:
-- the limit is over-counted, never exceeded.
--
-- KEYS: 1 the portfolio's set of recipients scored by their last count (µs)
-- ARGV: 1 max, 2 recipient, 3 window (µs)
-- Reply: {1, 0} or {0, retry after (µs)}
if redis.replicate_commands then redis.replicate_commands() end

local function fmt(x) return string.format("%.0f", x) end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local max, recipient, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])

redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", fmt(now - window))
if not redis.call("ZSCORE", KEYS[1], recipient) then
  local n = redis.call("ZCARD", KEYS[1])
  if n >= max then
    local e = redis.call("ZRANGE", KEYS[1], n - max, n - max, "WITHSCORES")
    return {0, math.max(1000, tonumber(e[2]) + window - now)}
  end
end
redis.call("ZADD", KEYS[1], fmt(now), recipient)
redis.call("PEXPIRE", KEYS[1], math.floor(window / 1000) + 1)
return {1, 0}
