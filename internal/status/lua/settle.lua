-- settle puts a record in a final state without a send (expired, rejected, canceled) or
-- releases a claim (state '').
--
-- KEYS[1] record: the notification record
-- KEYS[2] done: the job's tombstone once its finished record left Redis (its final state)
--
-- ARGV[1] owner: the delivery's claim owner
-- ARGV[2] state: the final state, or '' to release owner's claim only
-- ARGV[3] reason: recorded with the state ('': keep the record's)
-- ARGV[4] now: the time to record (RFC 3339)
-- ARGV[5] ttl_ms: how long the record is kept
-- ARGV[6] initial: the record JSON to start from when there is none
--
-- 'rejected' (a message that does not decode) only ever creates a record: a malformed message
-- that reuses the id of a job already known must not end that job, which is valid and may be
-- waiting for a retry or a schedule; the DLQ letter tells the malformed message's story.
--
-- Returns {old state, record JSON, 'ok'|'busy'}; busy when another delivery holds a live
-- claim; {final state, '', 'gone'} when only the tombstone is left: a finished job is never
-- settled again, nor its record recreated.
local raw = redis.call('GET', KEYS[1])
if not raw then
  local done = redis.call('GET', KEYS[2])
  if done then return {done, '', 'gone'} end
end
if raw and ARGV[2] == 'rejected' then
  local cur = cjson.decode(raw)
  return {cur.state, raw, 'ok'}
end
local rec
if raw then rec = cjson.decode(raw) else rec = cjson.decode(ARGV[6]) end
local old = rec.state
local prev = nil
if raw then prev = rec.state end
if ARGV[2] == '' then
  if rec.claim and rec.claim.owner == ARGV[1] then rec.claim = nil end
  if raw then return {old, save(KEYS[1], rec, tonumber(ARGV[5]), prev), 'ok'} end
  return {old, cjson.encode(rec), 'ok'}
end
if terminal[rec.state] or (rank[rec.state] and rank[rec.state] >= 2) then
  -- No state change (a resumed fallback that must wait is already 'sent'): still let go of
  -- this delivery's claim, so the copy released later is not taken for a crash.
  if raw and rec.claim and rec.claim.owner == ARGV[1] then
    rec.claim = nil
    return {old, save(KEYS[1], rec, tonumber(ARGV[5]), prev), 'ok'}
  end
  return {old, cjson.encode(rec), 'ok'}
end
if rec.claim and rec.claim.owner ~= ARGV[1] and rec.claim['until'] > nowms() then
  -- Another delivery is sending this job right now: do not settle under it.
  return {old, cjson.encode(rec), 'busy'}
end
rec.state = ARGV[2]
if ARGV[3] ~= '' then rec.reason = ARGV[3] end
-- Only this delivery's claim (or none) is let go: another delivery's expired claim is the
-- mark of a worker that died during its provider call, which the next claim turns into
-- 'unknown' rather than a second send.
if not rec.claim or rec.claim.owner == ARGV[1] then rec.claim = nil end
rec.updated_at = ARGV[4]
rec.created_at = rec.created_at or ARGV[4]
return {old, save(KEYS[1], rec, tonumber(ARGV[5]), prev), 'ok'}
