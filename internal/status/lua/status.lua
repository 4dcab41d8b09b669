-- status applies a provider status report to the attempt with that message id, forward only
-- (sent < delivered < read; failed is final for the attempt). A fallback leaves the record
-- with resume set and the next channel current, for the next delivery to send.
--
-- KEYS[1] record: the notification record
--
-- ARGV[1] message_id: the provider message id reported on
-- ARGV[2] state: the reported state
-- ARGV[3] code: the provider's error code
-- ARGV[4] reason: the provider's error text
-- ARGV[5] now: the time to record (RFC 3339)
-- ARGV[6] ttl_ms: how long the record is kept
-- ARGV[7] fallback: '1' when a failed report moves the job to its next channel (when it has
--   one) rather than failing it
-- ARGV[8] channel: the channel of the reported message ('' when unknown: then never adopted
--   by an attempt in doubt)
-- ARGV[9] archived: the record JSON read from the history bucket when Redis has none ('':
--   none). The report is then applied to it and the result returned, not stored: the caller
--   writes it back to the history (compare-and-set) and counts the campaign, so a late
--   report never brings a record back into Redis.
--
-- Returns {old record state, record JSON, 'changed'|'same'|'parked'|'missing'}.
local raw = redis.call('GET', KEYS[1])
local archived = false
if not raw and ARGV[9] ~= '' then raw, archived = ARGV[9], true end
if not raw then return {'', '', 'missing'} end
-- keep stores the changed record, or for an archived one only encodes it.
local function keep(rec, old)
  if archived then return cjson.encode(rec) end
  return save(KEYS[1], rec, tonumber(ARGV[6]), old)
end
local reached = {delivered=true, read=true}
local rec = cjson.decode(raw)
local old = rec.state
local st = ARGV[2]
local found = nil
local latest = true
if rec.history then
  for i = #rec.history, 1, -1 do
    local a = rec.history[i]
    if a.provider_message_id == ARGV[1] then found = a; break end
    if a.state ~= 'retry' then latest = false end
  end
end
if not found and rec.history and ARGV[8] ~= '' then
  -- A report by job id (biz_opaque_callback_data) for a message this record has no id for,
  -- while its latest attempt, on the same channel, is one whose worker died during the
  -- provider call: the report tells what became of that attempt.
  for i = #rec.history, 1, -1 do
    local a = rec.history[i]
    if a.state ~= 'retry' then
      if a.state == 'unknown' and a.channel == ARGV[8] and (a.provider_message_id == nil or a.provider_message_id == '') then
        found = a
        a.provider_message_id = ARGV[1]
        a.reason = 'worker stopped during the provider call; the provider reported the message'
        rec.provider_message_id = ARGV[1]
        rec.reason = nil
        latest = true
      end
      break
    end
  end
end
if not found and archived then
  -- A finished record has no send left to record: there is nothing to park the report for.
  return {old, raw, 'same'}
end
if not found then
  -- Reported before the worker recorded the send: park it for the attempt to pick up.
  rec.early = rec.early or {}
  local e = rec.early[ARGV[1]]
  if e == 'failed+' then e = 'failed' end
  local park = st
  if st == 'failed' and ARGV[7] == '1' then park = 'failed+' end
  if e == nil or (e ~= 'failed' and ((st == 'failed' and not reached[e]) or (rank[st] or -1) > (rank[e] or -1))) then
    rec.early[ARGV[1]] = park
    if ARGV[8] ~= '' then
      -- The channel it came from: an attempt in doubt adopts only its own channel's report.
      rec.early_ch = rec.early_ch or {}
      rec.early_ch[ARGV[1]] = ARGV[8]
    end
    return {old, keep(rec, old), 'parked'}
  end
  return {old, cjson.encode(rec), 'parked'}
end
if found.state == 'failed' or found.state == st then return {old, cjson.encode(rec), 'same'} end
-- A message the customer received (delivered, read) cannot fail any more: a late or replayed
-- 'failed' must neither end the record nor release its next channel (a second message).
if st == 'failed' and reached[found.state] then return {old, cjson.encode(rec), 'same'} end
if st ~= 'failed' and (rank[st] or -1) <= (rank[found.state] or -1) then return {old, cjson.encode(rec), 'same'} end
found.state = st
found.status_at = ARGV[5]
if ARGV[3] ~= '' then found.code = ARGV[3] end
if ARGV[4] ~= '' then found.reason = ARGV[4] end
report(found, st, ARGV[5], ARGV[3], ARGV[4])
-- The record follows its latest attempt; a late report on an earlier attempt (a delivered
-- WhatsApp message after the SMS went out) is recorded in the history only.
if latest then
  if st == 'failed' and ARGV[7] == '1' and not terminal[rec.state] and rec.channels
      and #rec.channels > (rec.channel_idx or 0) + 1 then
    rec.resume = true
    rec.channel_idx = (rec.channel_idx or 0) + 1
    rec.channel = rec.channels[rec.channel_idx + 1]
    rec.attempts = 0
    rec.reason = 'falling back after a failed report: ' .. ARGV[4]
  elseif st == 'failed' then
    rec.state = 'failed'
    rec.reason = ARGV[4]
  elseif not terminal[rec.state] and (rank[st] or -1) > (rank[rec.state] or -1) then
    rec.state = st
  end
end
rec.updated_at = ARGV[5]
return {old, keep(rec, old), 'changed'}
