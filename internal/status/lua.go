package status

import "github.com/redis/go-redis/v9"

// Every change to a notification record is one of these scripts, so that a worker, a
// redelivered copy of the same job and a webhook never interleave half-way. Records are JSON
// documents (cjson) holding the state, the current channel, the claim and the history.
// Times for claims come from redis TIME so that every worker agrees on them.

const luaCommon = `
local rank = {queued=0, scheduled=1, sent=2, delivered=3, read=4}
local terminal = {failed=true, expired=true, suppressed=true, rejected=true, canceled=true}
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- save stores rec and keeps its campaign's counters (herald:camp:<name>, a hash of
-- s:<state> counts) in step with the state change from prev (nil for a new record). The
-- counter key is derived here rather than passed in KEYS: Herald supports a single Redis
-- primary (with replicas or Sentinel), not Redis Cluster. It returns the encoded record, so
-- that a script answering with the record it just saved does not encode it a second time
-- (cjson is most of a script's cost).
local function save(key, rec, ttl, prev)
  local enc = cjson.encode(rec)
  redis.call('SET', key, enc, 'PX', ttl)
  local c = rec.campaign
  if c and c ~= '' and c ~= cjson.null and prev ~= rec.state then
    local ck = 'herald:camp:' .. c
    if prev then redis.call('HINCRBY', ck, 's:' .. prev, -1) end
    redis.call('HINCRBY', ck, 's:' .. rec.state, 1)
    redis.call('PEXPIRE', ck, ttl)
  end
  return enc
end
`

// begin claims a job for one delivery. KEYS: record, suppression set, window.
// ARGV: owner, lease ms, initial record JSON, recipient, ttl ms, now (RFC 3339), replay
// ('1' for a job replayed from the DLQ), check channel index (” for a plain delivery; else
// this delivery is a fallback check on the attempt at that index), deadline ('1': the check
// is the delivery deadline, so a message still only 'sent' falls back), deadline reason.
// Returns {verdict, record JSON, wait ms, window open}.
var scriptBegin = redis.NewScript(luaCommon + `
local raw = redis.call('GET', KEYS[1])
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
if redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1 then
  rec.state = 'suppressed'
  rec.reason = 'recipient opted out'
  rec.claim = nil
  rec.updated_at = ARGV[6]
  return {'suppressed', save(KEYS[1], rec, tonumber(ARGV[5]), prev), 0, win}
end
rec.claim = {owner=ARGV[1], ['until']=now + tonumber(ARGV[2]), channel=rec.channel}
if not raw then rec.created_at = rec.created_at or ARGV[6] end
return {'claimed', save(KEYS[1], rec, tonumber(ARGV[5]), prev), 0, win}
`)

// attempt records the outcome of one send attempt. KEYS: record, provider message index.
// ARGV: owner, mode (sent|retry|fallback|failed), channel, channel index, provider message id,
// code, reason, now, ttl ms, attempts on this channel, job id, next channel (fallback), SMS
// parts of a sent message (0: not an SMS), DLQ reason of a failed job (empty: none).
// Returns {old state, record JSON}. The same outcome of the same delivery recorded twice (a
// client retry after a lost reply) changes nothing the second time and answers as the first.
var scriptAttempt = redis.NewScript(luaCommon + `
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
    if e == 'failed' or (rank[e] and rank[e] > rank['sent']) then a.state = e end
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
    local ck = 'herald:camp:' .. rec.campaign
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
`)

// settle puts a record in a final state without a send (expired, rejected, canceled) or
// releases a claim (state ""). KEYS: record. ARGV: owner, state, reason, now, ttl ms,
// initial record JSON (used when there is no record yet). Returns {old state, record JSON,
// 'ok'|'busy'}; busy when another delivery holds a live claim.
var scriptSettle = redis.NewScript(luaCommon + `
local raw = redis.call('GET', KEYS[1])
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
`)

// status applies a provider status report to the attempt with that message id, forward only
// (sent < delivered < read; failed is final for the attempt). KEYS: record.
// ARGV: provider message id, state, code, reason, now, ttl ms, fallback ('1': a failed report
// moves the job to its next channel when it has one, rather than failing it), channel of the
// reported message (empty when unknown: then never adopted by an attempt in doubt).
// Returns {old record state, record JSON, 'changed'|'same'|'parked'}. A fallback leaves the
// record with resume set and the next channel current, for the next delivery to send.
var scriptStatus = redis.NewScript(luaCommon + `
local raw = redis.call('GET', KEYS[1])
if not raw then return {'', '', 'missing'} end
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
if not found then
  -- Reported before the worker recorded the send: park it for the attempt to pick up.
  rec.early = rec.early or {}
  local e = rec.early[ARGV[1]]
  if e == 'failed+' then e = 'failed' end
  local park = st
  if st == 'failed' and ARGV[7] == '1' then park = 'failed+' end
  if e == nil or (e ~= 'failed' and (st == 'failed' or (rank[st] or -1) > (rank[e] or -1))) then
    rec.early[ARGV[1]] = park
    if ARGV[8] ~= '' then
      -- The channel it came from: an attempt in doubt adopts only its own channel's report.
      rec.early_ch = rec.early_ch or {}
      rec.early_ch[ARGV[1]] = ARGV[8]
    end
    return {old, save(KEYS[1], rec, tonumber(ARGV[6]), old), 'parked'}
  end
  return {old, cjson.encode(rec), 'parked'}
end
if found.state == 'failed' or found.state == st then return {old, cjson.encode(rec), 'same'} end
if st ~= 'failed' and (rank[st] or -1) <= (rank[found.state] or -1) then return {old, cjson.encode(rec), 'same'} end
found.state = st
found.status_at = ARGV[5]
if ARGV[3] ~= '' then found.code = ARGV[3] end
if ARGV[4] ~= '' then found.reason = ARGV[4] end
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
return {old, save(KEYS[1], rec, tonumber(ARGV[6]), old), 'changed'}
`)
