-- attempt records the outcome of one send attempt. The same outcome of the same delivery
-- recorded twice (a client retry after a lost reply) changes nothing the second time and
-- answers as the first.
--
-- KEYS[1] record: the notification record
-- KEYS[2] message: the provider message index (message id -> job ref), set on a send
--
-- ARGV[1] owner: the delivery's claim owner
-- ARGV[2] mode: sent|retry|fallback|failed
-- ARGV[3] channel: the channel of the attempt
-- ARGV[4] channel_idx: its cascade index
-- ARGV[5] provider_message_id: the provider's id of a sent message
-- ARGV[6] code: the provider's error code
-- ARGV[7] reason: why the attempt failed
-- ARGV[8] now: the time to record (RFC 3339)
-- ARGV[9] ttl_ms: how long the record and the index are kept
-- ARGV[10] attempts: attempts on this channel so far
-- ARGV[11] job_ref: the value of the message index (the job's <tenant>/<id>)
-- ARGV[12] next_channel: the channel a fallback moves to
-- ARGV[13] parts: SMS parts of a sent message (0: not an SMS)
-- ARGV[14] dlq: the DLQ reason of a failed job ('': none)
--
-- Returns {old state, record JSON}; {'', ''} when there is no record.
local raw = redis.call('GET', KEYS[1])
if not raw then return {'', ''} end
local rec = cjson.decode(raw)
local op = ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[4] .. '|' .. ARGV[10]
if rec.op == op then return {rec.op_old or rec.state, raw} end
local old = rec.state
rec.op = op
rec.op_old = old
local mode = ARGV[2]
local ttl = tonumber(ARGV[9])
rec.history = rec.history or {}
local a = {channel=ARGV[3], at=ARGV[8]}
if ARGV[5] ~= '' then a.provider_message_id = ARGV[5] end
if ARGV[6] ~= '' then a.code = ARGV[6] end
if ARGV[7] ~= '' then a.reason = ARGV[7] end
rec.channel = ARGV[3]
rec.channel_idx = tonumber(ARGV[4])
rec.attempts = tonumber(ARGV[10])
rec.updated_at = ARGV[8]
if mode == 'sent' then
  a.state = 'sent'
  -- A status webhook may have come before this record (the provider answers, then reports
  -- at once): apply what was parked for this message id.
  local fallback = false
  if rec.early and rec.early[ARGV[5]] then
    local e = rec.early[ARGV[5]]
    -- 'failed+' is a failed report classified as "try the next channel".
    if e == 'failed+' then e = 'failed'; fallback = true end
    if e == 'failed' or (rank[e] and rank[e] > rank['sent']) then
      a.state = e
      -- Reported before the send was recorded: the row has the send's time.
      report(a, e, ARGV[8])
    end
    rec.early[ARGV[5]] = nil
    if rec.early_ch then rec.early_ch[ARGV[5]] = nil end
    if next(rec.early) == nil then rec.early = nil; rec.early_ch = nil end
  end
  rec.provider_message_id = ARGV[5]
  rec.claim = nil
  rec.resume = nil
  rec.reason = nil
  local idx = tonumber(ARGV[4])
  if a.state == 'failed' and fallback and rec.channels and #rec.channels > idx + 1 then
    -- The provider reported the message failed before this record was written: move on
    -- to the next channel, as a failed report after it would have.
    rec.state = 'sent'
    rec.resume = true
    rec.channel_idx = idx + 1
    rec.channel = rec.channels[idx + 2]
    rec.reason = 'falling back after a failed report'
  elseif a.state == 'failed' then rec.state = 'failed' else rec.state = a.state end
  redis.call('SET', KEYS[2], ARGV[11], 'PX', ttl)
  if rec.campaign and rec.campaign ~= '' and rec.campaign ~= cjson.null then
    -- Messages per channel (the cost estimate) and the send times (the campaign's rate).
    local ck = campkey(rec)
    local t = nowms()
    redis.call('HINCRBY', ck, 'c:' .. ARGV[3], 1)
    local parts = tonumber(ARGV[13] or '0')
    if parts and parts > 0 then redis.call('HINCRBY', ck, 'p:' .. ARGV[3], parts) end
    redis.call('HSETNX', ck, 'first_sent', t)
    redis.call('HSET', ck, 'last_sent', t)
  end
elseif mode == 'retry' then
  a.state = 'retry'
  rec.claim = nil
  rec.reason = ARGV[7]
elseif mode == 'fallback' then
  a.state = 'failed'
  rec.reason = ARGV[7]
  -- The job moves on to the next channel: the record and the claim name the call that may
  -- be in doubt if this worker dies now.
  rec.channel = ARGV[12]
  if rec.claim then rec.claim.channel = ARGV[12] end
elseif mode == 'failed' then
  a.state = 'failed'
  rec.state = 'failed'
  rec.reason = ARGV[7]
  if ARGV[14] and ARGV[14] ~= '' then rec.dlq = ARGV[14] end
  rec.claim = nil
  rec.resume = nil
end
table.insert(rec.history, a)
return {old, save(KEYS[1], rec, ttl, old)}
