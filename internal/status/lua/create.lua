-- create stores the first record of an accepted job unless one exists, and counts it in its
-- campaign in the same step: a record is counted exactly when it is created, whichever of the
-- API and a worker creates it first, and a create retried after a lost reply counts nothing.
--
-- KEYS[1] record: the notification record
-- KEYS[2] done: the job's tombstone once its finished record left Redis (its final state)
--
-- ARGV[1] initial: the record JSON to store
-- ARGV[2] ttl_ms: how long the record is kept
-- ARGV[3] campaign: the counters' key of the record's campaign ('' for none)
-- ARGV[4] state: the record's state, counted in the campaign
--
-- Returns {1, ''} when the record was created, else {0, the existing record JSON}, or
-- {0, '', final state} when only the tombstone is left (the record is in the history).
local ttl = tonumber(ARGV[2])
local done = redis.call('GET', KEYS[2])
if done and redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', done} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ttl) then
  return {0, redis.call('GET', KEYS[1])}
end
if ARGV[3] ~= '' then
  redis.call('HINCRBY', ARGV[3], 's:' .. ARGV[4], 1)
  redis.call('PEXPIRE', ARGV[3], ttl)
end
return {1, ''}
