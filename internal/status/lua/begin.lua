-- begin claims a job for one delivery, after the per-recipient admission checks.
--
-- KEYS[1] record: the notification record
-- KEYS[2] suppressed: the deployment-wide set of recipients who opted out (operators only)
-- KEYS[3] window: the marker of the recipient's open 24-hour window
-- KEYS[4] tenant_suppressed: the set of recipients who opted out of the job's tenant: consent
--   is given to a business
-- KEYS[5] marketing: the set of recipients who stopped the tenant's marketing messages
-- KEYS[6] marketing_all: the deployment-wide set of recipients who stopped marketing messages
-- KEYS[7] done: the tombstone of the job once its finished record left Redis for the history
--   bucket (its final state), kept for the whole record TTL: the id stays idempotent
--
-- ARGV[1] owner: the delivery's claim owner, unique per delivery
-- ARGV[2] lease_ms: how long the claim holds
-- ARGV[3] initial: the record JSON to start from when there is none
-- ARGV[4] to: the recipient, looked up in the suppressed set
-- ARGV[5] ttl_ms: how long the record is kept
-- ARGV[6] now: the time to record (RFC 3339)
-- ARGV[7] replay: '1' for a job replayed from the DLQ
-- ARGV[8] check_idx: '' for a plain delivery; else this delivery is a fallback check on the
--   attempt at that cascade index
-- ARGV[9] deadline: '1' when the check is the delivery deadline, so a message still only
--   'sent' falls back
-- ARGV[10] deadline_reason: the reason recorded with a deadline fallback
-- ARGV[11] is_marketing: '1' when the job is a marketing template message
-- ARGV[12] restored: for a replay of a failed or rejected job whose record moved to the
--   history, the history's copy of the record ('' otherwise): the replay starts from it
--
-- Returns {verdict, record JSON, wait ms, window open (0|1)}; {'gone', final state, 0, 0}
-- when only the tombstone is left (the record is in the history bucket).
local raw = redis.call('GET', KEYS[1])
if not raw then
  -- A finished job whose record moved to the history: a duplicate, whatever this delivery
  -- is (a republished id, a deadline firing late), unless it is a replay from the DLQ that
  -- brings the history's copy back (the Go side passes it only for a failed or rejected
  -- job): the replay rules below then decide from that copy, as if it had stayed here. The
  -- tombstone stays: it is read only while no record is here, and retiring the record
  -- again sets it anew.
  local done = redis.call('GET', KEYS[7])
  if done then
    if ARGV[7] == '1' and ARGV[12] ~= '' then raw = ARGV[12] else return {'gone', done, 0, 0} end
  end
end
local rec
if raw then rec = cjson.decode(raw) else rec = cjson.decode(ARGV[3]) end
local prev = nil
if raw then prev = rec.state end
local now = nowms()
local win = redis.call('EXISTS', KEYS[3])
if terminal[rec.state] and ARGV[7] == '1' and (rec.state == 'failed' or rec.state == 'rejected') then
  -- A replay from the DLQ: start the cascade again unless some attempt may have reached the
  -- customer (sent, delivered, read or unknown), which would make it a second send.
  local reached = false
  for _, a in ipairs(rec.history or {}) do
    if a.state == 'sent' or a.state == 'delivered' or a.state == 'read' or a.state == 'unknown' then reached = true end
  end
  if not reached then
    rec.state = 'queued'
    rec.channel_idx = 0
    rec.attempts = 0
    rec.reason = 'replayed from the DLQ'
    rec.dlq = nil
  end
end
if ARGV[8] ~= '' and not raw then
  -- A fallback check for a job Redis no longer knows (expired, or data lost): sending it
  -- from the first channel again could repeat a message that went out. Nothing to do.
  return {'done', ARGV[3], 0, win}
end
if ARGV[8] ~= '' and not rec.resume then
  -- A fallback check (the delivery deadline firing): act only if the attempt it was set for
  -- is still the current one, still not delivered, and nobody is sending the job right now.
  local idx = tonumber(ARGV[8])
  local live = rec.claim and rec.claim['until'] > now
  if ARGV[9] == '1' and rec.state == 'sent' and rec.channel_idx == idx and rec.channels
      and #rec.channels > idx + 1 and not live then
    rec.history = rec.history or {}
    table.insert(rec.history, {channel=rec.channel, state='failed', code='deadline', reason=ARGV[10], at=ARGV[6]})
    rec.resume = true
    rec.channel_idx = idx + 1
    rec.channel = rec.channels[idx + 2]
    rec.attempts = 0
    rec.reason = ARGV[10]
  else
    return {'done', cjson.encode(rec), 0, win}
  end
end
if terminal[rec.state] then return {'done', cjson.encode(rec), 0, win} end
if rec.state == 'sent' and not rec.resume and not rec.claim and rec.history and #rec.history > 0
    and rec.history[#rec.history].state == 'unknown' then
  -- Still in doubt: the delivery that found it so may have died before its deadline was
  -- parked (or its acknowledgement was lost). Say so again: the deadline is parked again,
  -- under the same Nats-Msg-Id, so a repeat changes nothing.
  return {'ambiguous', cjson.encode(rec), 0, win}
end
if rank[rec.state] and rank[rec.state] >= 2 and not rec.resume then return {'done', cjson.encode(rec), 0, win} end
if rec.claim and rec.claim.owner ~= ARGV[1] then
  if rec.claim['until'] > now then
    return {'busy', cjson.encode(rec), rec.claim['until'] - now, win}
  end
  -- The previous holder's lease ran out before it recorded an outcome: it died during the
  -- provider call. The provider may have accepted the message, so it is never sent again on
  -- this channel; the attempt is kept as 'unknown'.
  rec.history = rec.history or {}
  local u = {channel=rec.claim.channel, state='unknown', reason='worker stopped during the provider call; not resent to avoid a duplicate', at=ARGV[6]}
  table.insert(rec.history, u)
  rec.claim = nil
  rec.resume = nil
  rec.state = 'sent'
  rec.reason = 'outcome unknown'
  rec.updated_at = ARGV[6]
  -- The provider may have reported the message already (parked in early, keyed by its id):
  -- a single positive report tells the outcome. A failed one stays parked; the delivery
  -- deadline then moves the job on.
  if rec.early then
    local id, st, n = nil, nil, 0
    for k, v in pairs(rec.early) do id, st, n = k, v, n + 1 end
    if n == 1 and rank[st] and rank[st] >= 2 and rec.early_ch and rec.early_ch[id] == u.channel then
      u.provider_message_id = id
      u.state = st
      report(u, st, ARGV[6])
      u.reason = 'worker stopped during the provider call; the provider reported the message'
      rec.provider_message_id = id
      rec.state = st
      rec.reason = nil
      rec.early = nil
      rec.early_ch = nil
    end
  end
  return {'ambiguous', save(KEYS[1], rec, tonumber(ARGV[5]), prev), 0, win}
end
local stopped = redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1 or redis.call('SISMEMBER', KEYS[4], ARGV[4]) == 1
local mstopped = not stopped and ARGV[11] == '1' and
  (redis.call('SISMEMBER', KEYS[5], ARGV[4]) == 1 or redis.call('SISMEMBER', KEYS[6], ARGV[4]) == 1)
if stopped or mstopped then
  rec.state = 'suppressed'
  rec.reason = 'recipient opted out'
  if mstopped then rec.reason = 'recipient stopped marketing messages' end
  rec.claim = nil
  rec.updated_at = ARGV[6]
  return {'suppressed', save(KEYS[1], rec, tonumber(ARGV[5]), prev), 0, win}
end
rec.claim = {owner=ARGV[1], ['until']=now + tonumber(ARGV[2]), channel=rec.channel}
if not raw then rec.created_at = rec.created_at or ARGV[6] end
return {'claimed', save(KEYS[1], rec, tonumber(ARGV[5]), prev), 0, win}
