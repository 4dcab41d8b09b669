-- Prepended to every script: the state order, the clock and the one way a record is saved.
local rank = {queued=0, scheduled=1, sent=2, delivered=3, read=4}
local terminal = {failed=true, expired=true, suppressed=true, rejected=true, canceled=true}
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- report appends a provider report that changed attempt a's state to its statuses, with
-- its time: the history keeps a row per state change.
local function report(a, state, at, code, reason)
  a.statuses = a.statuses or {}
  local c = {state=state, at=at}
  if code and code ~= '' then c.code = code end
  if reason and reason ~= '' then c.reason = reason end
  table.insert(a.statuses, c)
end
-- campkey is the key of the counters of rec's campaign: campaigns are per tenant.
local function campkey(rec)
  local t = rec.tenant
  if not t or t == '' or t == cjson.null then t = 'default' end
  return 'herald:camp:' .. t .. '/' .. rec.campaign
end
-- save stores rec and keeps its campaign's counters (herald:camp:<tenant>/<name>, a hash of
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
    local ck = campkey(rec)
    if prev then redis.call('HINCRBY', ck, 's:' .. prev, -1) end
    redis.call('HINCRBY', ck, 's:' .. rec.state, 1)
    redis.call('PEXPIRE', ck, ttl)
  end
  return enc
end
