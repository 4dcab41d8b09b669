-- retire shortens a finished record's stay in Redis once its copy is in the history bucket,
-- and leaves the tombstone that keeps its id idempotent. It acts only when the record is
-- still the copy that was archived: a record changed meanwhile (a report, a replay) is
-- archived again by whoever changed it, or by the caller with the record this returns.
--
-- KEYS[1] record: the notification record
-- KEYS[2] done: the tombstone (the record's final state), kept for the record TTL
--
-- ARGV[1] archived: the record JSON the history bucket now holds
-- ARGV[2] hot_ms: how long the record stays in Redis from now (HERALD_HOT_TTL)
-- ARGV[3] ttl_ms: how long the tombstone is kept (HERALD_STATUS_TTL)
-- ARGV[4] state: the tombstone's value, the code of the record's state (status.tombstone)
--
-- Returns {'ok'}, {'gone'} (no record any more) or {'moved', the current record JSON}.
local raw = redis.call('GET', KEYS[1])
if not raw then return {'gone'} end
if raw ~= ARGV[1] then return {'moved', raw} end
local hot = tonumber(ARGV[2])
local left = redis.call('PTTL', KEYS[1])
-- Never lengthen: a record retired before keeps its first deadline.
if left < 0 or left > hot then redis.call('PEXPIRE', KEYS[1], hot) end
redis.call('SET', KEYS[2], ARGV[4], 'PX', tonumber(ARGV[3]))
return {'ok'}
