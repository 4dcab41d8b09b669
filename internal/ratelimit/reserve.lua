-- Reserve one send slot. Times are integer microseconds on Redis's clock, written with
-- "%.0f" because tostring keeps only 14 digits. A denial writes nothing but the removal of
-- window entries that can never count again.
--
-- KEYS: 1 tat, 2 slow, 3 pair, 4 hold, 5 recipient daily, 6 sender daily, 7 tier
-- ARGV: 1 rate/s, 2 jitter factor (>= 1), 3 horizon, 4 pair interval, 5 recipient daily max,
--       6 sender daily max, 7 tier max, 8 counts unique (0|1), 9 recipient, 10 window,
--       11 nonce (unique window members), 12 slot of an earlier reservation of the same send
--       that this one replaces ("" none), 13 that reservation's window member
-- Reply: {1, delay, "", slot} or {0, retry after, reason, 0}
if redis.replicate_commands then redis.replicate_commands() end -- TIME before writes on Redis < 5

local function fmt(x) return string.format("%.0f", x) end
local function ms(x) return math.floor(x / 1000) + 1 end -- a TTL that outlives x µs

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[10])

-- A replaced reservation was never used: its window entries go, and its pair entry (the
-- pair key, if still its slot) does not hold this send back. Its throughput slot stays spent.
local prevSlot = tonumber(ARGV[12] or "")
if prevSlot then
  redis.call("ZREM", KEYS[5], ARGV[13])
  redis.call("ZREM", KEYS[6], ARGV[13])
end

local slow = tonumber(redis.call("GET", KEYS[2]) or "1")
local T = math.ceil(1000000 / (tonumber(ARGV[1]) * slow) * tonumber(ARGV[2]))
if T < 1 then T = 1 end
local slot = math.max(now, tonumber(redis.call("GET", KEYS[1]) or "0"))

local reason, retry = "", 0
local function deny(r, wait)
  if wait > retry or reason == "" then reason, retry = r, wait end
end

-- Throughput: no burst, no slot beyond the horizon.
local horizon = tonumber(ARGV[3])
if slot - now > horizon then deny("rate", slot - now - horizon) end

-- Penalty hold on the pair.
local hold = tonumber(redis.call("GET", KEYS[4]) or "0")
if slot < hold then deny("penalty", hold - now) end

-- Pair interval, measured between slots (when the sends really happen).
local pairI = tonumber(ARGV[4])
if pairI > 0 then
  local last = tonumber(redis.call("GET", KEYS[3]) or "")
  if last and last ~= prevSlot and slot < last + pairI then deny("pair", last + pairI - now) end
end

-- A moving window over a sorted set scored by slot: full when max entries are newer than
-- slot - window; it frees up when the (n-max)th of them leaves.
local function full(key, max, r)
  redis.call("ZREMRANGEBYSCORE", key, "-inf", fmt(now - window))
  local from = "(" .. fmt(slot - window)
  local n = redis.call("ZCOUNT", key, from, "+inf")
  if n >= max then
    local e = redis.call("ZRANGEBYSCORE", key, from, "+inf", "WITHSCORES", "LIMIT", n - max, 1)
    deny(r, tonumber(e[2]) + window - now)
  end
end

local rdayMax, sdayMax, tierMax = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local recipient = ARGV[9]
if rdayMax > 0 then full(KEYS[5], rdayMax, "recipient_daily") end
if sdayMax > 0 then full(KEYS[6], sdayMax, "sender_daily") end
local tier = tierMax > 0 and ARGV[8] == "1"
if tier then
  local last = redis.call("ZSCORE", KEYS[7], recipient)
  if not (last and tonumber(last) > slot - window) then full(KEYS[7], tierMax, "tier") end
end

if reason ~= "" then return {0, retry, reason, 0} end

-- Everything passed: consume.
local tat = slot + T
redis.call("SET", KEYS[1], fmt(tat), "PX", ms(tat - now))
if pairI > 0 then redis.call("SET", KEYS[3], fmt(slot), "PX", ms(slot + pairI - now)) end
local member = fmt(slot) .. ":" .. ARGV[11]
if rdayMax > 0 then
  redis.call("ZADD", KEYS[5], fmt(slot), member)
  redis.call("PEXPIRE", KEYS[5], ms(slot + window - now))
end
if sdayMax > 0 then
  redis.call("ZADD", KEYS[6], fmt(slot), member)
  redis.call("PEXPIRE", KEYS[6], ms(slot + window - now))
end
if tier then
  redis.call("ZADD", KEYS[7], fmt(slot), recipient)
  redis.call("PEXPIRE", KEYS[7], ms(slot + window - now))
end
return {1, slot - now, "", slot}
