"""The job store's Lua scripts (shared/jobs.py runs them): each a step Redis makes atomically.

Job keys are built inside the scripts from the prefix: fine on one Redis, not on a Redis
Cluster. Only shared/jobs.py may touch these keys (tests/test_layout_store.py).
"""

# Failing a job that has used up its attempts, as FINISH would (once, out of every pool it is
# in, its waiters woken) but inside the script that found it, so no other claim or sweep can
# hand it out in between. `why` is a format whose %d is the number of attempts made. A job with a
# callback is owed its webhook from this step on (`owed`, the outbox: shared/job_outbox.py).
GIVE_UP = """
local function give_up(prefix, id, now, why, pools, owed)
  local k = prefix .. 'job:' .. id
  local tries = tonumber(redis.call('HGET', k, 'attempts') or '0')
  redis.call('HSET', k, 'status', 'failed', 'error', string.format(why, tries),
             'finished_at', now)
  redis.call('HINCRBY', k, 'finishes', 1)
  for _, pool in ipairs(pools) do redis.call('ZREM', pool, id) end
  redis.call('RPUSH', prefix .. 'done:' .. id, '1')
  redis.call('EXPIRE', prefix .. 'done:' .. id, 120)
  if redis.call('HEXISTS', k, 'callback') == 1 then redis.call('ZADD', owed, now, id) end
end
"""

# Claiming: one atomic step with an owner (the Celery task id) and a lease. The own job's kind
# picks the pools: a still's task fills its micro-batch from the stills' ready set (the oldest
# waiting) and never takes a video; a video's task takes its own video alone (one video a task
# keeps it inside the time limit). A job leased to another live owner is left alone, so a job
# claimed into one worker's batch never runs again when its own task reaches another worker.
# A job that has been claimed before (its worker died or ran out of time on it) runs alone: it
# fills no batch and is taken into none, so that an upload that kills its worker takes no
# batch-mates down with it. A task redelivered after its worker died (same task id) takes back
# its own job, alone, and gives the rest of its batch (the owner set) back to the ready pool,
# each to be sent again in a task of its own: only the job that kills its worker keeps dying.
# A job given back is noted in the resend set, due a lease from now: the sweep sends it once
# more if no claim has taken it by then (the process sending it may die before it has).
# A job it would take that has been claimed DFD_MAX_ATTEMPTS times already (each claim counts
# one) is failed instead (GIVE_UP), so a job that kills its worker is not run again and again.
# Returns {running ids, ids given up, {id, priority} pairs given back to be sent again}.
# KEYS: stills ready, stills leased, videos ready, videos leased, the owner's set, resend,
# webhooks owed. ARGV: prefix, owner, own job id, extra, now, lease seconds, most attempts,
# why (a format).
CLAIM = GIVE_UP + """
local prefix, owner, own = ARGV[1], ARGV[2], ARGV[3]
local extra, now, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cap, why = tonumber(ARGV[7]), ARGV[8]
local gave_up, again = {}, {}
local media = redis.call('HGET', prefix .. 'job:' .. own, 'media') or 'image'
local ready, leased = KEYS[1], KEYS[2]
if media == 'video' then ready, leased, extra = KEYS[3], KEYS[4], 0 end
local claimed, seen = {}, {}
local pools = {KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]}
local function tries(id)
  return tonumber(redis.call('HGET', prefix .. 'job:' .. id, 'attempts') or '0')
end
-- Out of attempts: failed (GIVE_UP) and reported, never handed out nor given back.
local function spent(id)
  if tries(id) < cap then return false end
  give_up(prefix, id, now, why, pools, KEYS[7])
  table.insert(gave_up, id)
  return true
end
local function take(id)
  if seen[id] then return end
  seen[id] = true
  local k = prefix .. 'job:' .. id
  local st = redis.call('HGET', k, 'status')
  if (not st) or st == 'done' or st == 'failed' then
    for _, pool in ipairs(pools) do redis.call('ZREM', pool, id) end
    return
  end
  if (redis.call('HGET', k, 'media') or 'image') ~= media then return end
  if st == 'running' then
    local holder = redis.call('HGET', k, 'owner')
    local till = tonumber(redis.call('HGET', k, 'lease_until') or '0')
    if holder ~= owner and till > now then return end
  end
  if spent(id) then return end
  redis.call('HSET', k, 'status', 'running', 'started_at', now, 'owner', owner,
             'lease_until', now + lease)
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('ZREM', ready, id)
  redis.call('ZREM', KEYS[6], id)
  redis.call('ZADD', leased, now + lease, id)
  redis.call('SADD', KEYS[5], id)
  table.insert(claimed, id)
end
-- A batch-mate of a redelivered task: back to its pool, queued, unless final, gone, taken over
-- by another claim since, or out of attempts.
local function give_back(id)
  seen[id] = true
  redis.call('SREM', KEYS[5], id)
  local k = prefix .. 'job:' .. id
  if redis.call('HGET', k, 'status') ~= 'running' or redis.call('HGET', k, 'owner') ~= owner then
    return
  end
  if spent(id) then return end
  redis.call('HSET', k, 'status', 'queued')
  redis.call('HDEL', k, 'owner', 'lease_until')
  redis.call('ZREM', leased, id)
  redis.call('ZADD', ready, redis.call('HGET', k, 'created_at'), id)
  redis.call('ZADD', KEYS[6], now + lease, id)
  table.insert(again, id)
  table.insert(again, redis.call('HGET', k, 'priority') or '')
end
take(own)
-- Its own job tried before (this claim counted again): no fresh job shares its fate.
local alone = claimed[1] == own and tries(own) > 1
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if not seen[id] then give_back(id) end
end
local want = extra - (#claimed - 1)
if want > 0 and not alone then
  -- Jobs tried before wait in the pool for their own task: look a little past them.
  for _, id in ipairs(redis.call('ZRANGE', ready, 0, want + 63)) do
    if want <= 0 then break end
    if tries(id) == 0 then take(id) end
    want = extra - (#claimed - 1)
  end
end
if #claimed > 0 then redis.call('EXPIRE', KEYS[5], math.ceil(lease) + 60) end
return {claimed, gave_up, again}
"""

# Finishing is atomic and happens once: a redelivered task that finds the job final does nothing.
# A job with a callback is owed its webhook from this same step on (the outbox): a worker that
# dies before it sends the webhook task loses nothing, the sweep sends it (LAPSED_WEBHOOKS).
# KEYS: the record, its done token, stills leased, videos leased, webhooks owed, [the reuse
# index entry].
FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'done' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'finished_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'finishes', 1)
redis.call('ZREM', KEYS[3], ARGV[7])
redis.call('ZREM', KEYS[4], ARGV[7])
redis.call('RPUSH', KEYS[2], '1')
redis.call('EXPIRE', KEYS[2], 120)
if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[7])
end
if KEYS[6] then redis.call('SET', KEYS[6], ARGV[5], 'EX', ARGV[6]) end
return 1
"""

# Fields written only into a record that exists (as one step: a DELETE in between must not
# leave a record holding nothing but these fields, and without its expiry).
# ARGV: field, value, field, value, ...
SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# Jobs whose lease lapsed (their task was killed at the hard time limit and never comes back,
# or their worker's whole process died and its message waits out the visibility timeout) go
# back to their ready pool, queued, to be sent again; one that has used up its attempts is
# failed instead (GIVE_UP): a job that always outlives the limit would otherwise be sent again
# forever. The sweep runs it once a minute, busy or idle, so no lapsed job waits on an upload.
# A job sent again is noted in the resend set, due `grace` seconds on: one still queued then
# (its message was lost with the process sending it) is sent once more, and noted again.
# "Why?" maps whose lease lapsed lose their holder and get a lease of `grace` seconds, to be
# sent again (their claim fails one that has used up its attempts; a lost message lapses
# again). Returns {id, priority pairs of jobs sent again, ids given up, id, priority pairs of
# maps sent again}.
# KEYS: stills leased, stills ready, videos leased, videos ready, maps leased, resend, webhooks
# owed. ARGV: prefix, now, most attempts, why (a format), grace seconds.
RELEASE_LAPSED = GIVE_UP + """
local again, gave_up, maps = {}, {}, {}
local prefix, now, cap, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local function send(id, into)
  redis.call('ZADD', KEYS[6], now + grace, id)
  table.insert(into, id)
  table.insert(into, redis.call('HGET', prefix .. 'job:' .. id, 'priority') or '')
end
for _, pools in ipairs({{KEYS[1], KEYS[2], KEYS[6]}, {KEYS[3], KEYS[4], KEYS[6]}}) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', pools[1], '-inf', now)) do
    local k = prefix .. 'job:' .. id
    redis.call('ZREM', pools[1], id)
    if redis.call('HGET', k, 'status') ~= 'running' then
      -- final meanwhile, or gone: nothing to do
    elseif tonumber(redis.call('HGET', k, 'attempts') or '0') >= cap then
      give_up(prefix, id, now, ARGV[4], pools, KEYS[7])
      table.insert(gave_up, id)
    else
      redis.call('HSET', k, 'status', 'queued')
      redis.call('HDEL', k, 'owner', 'lease_until')
      redis.call('ZADD', pools[2], redis.call('HGET', k, 'created_at'), id)
      send(id, again)
    end
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now)) do
  if redis.call('HGET', prefix .. 'job:' .. id, 'status') == 'queued' then
    send(id, again)
  else
    redis.call('ZREM', KEYS[6], id)
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)) do
  local k = prefix .. 'job:' .. id
  redis.call('ZREM', KEYS[5], id)
  if redis.call('HGET', k, 'status') == 'done' and redis.call('HEXISTS', k, 'explanation') == 0
  then
    redis.call('HDEL', k, 'map_owner')
    redis.call('HSET', k, 'map_lease_until', now + grace)
    redis.call('ZADD', KEYS[5], now + grace, id)
    table.insert(maps, id)
    table.insert(maps, redis.call('HGET', k, 'priority') or '')
  end
end
return {again, gave_up, maps}
"""

# Claiming a done job's "Why?" map, as a job is claimed: with an owner (the task id) and a
# lease, each claim counting one attempt. A map is claimed again only when its worker died on
# it (Celery redelivers the task) or ran out of time (the sweep sends it again), so one that has
# been claimed DFD_MAX_ATTEMPTS times is recorded as failed instead (ARGV[5], the explanation
# that says so): the verdict stands, and the map never hangs at "pending". Returns 'run',
# 'gave_up', or 'skip' (gone, made, never asked for, or held by another live task).
# KEYS: the record, maps leased. ARGV: job id, owner, now, lease seconds, most attempts,
# the failed explanation (JSON).
CLAIM_MAP = """
local k, id, owner, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('HGET', k, 'status') ~= 'done' or redis.call('HGET', k, 'explain') ~= '1'
    or redis.call('HEXISTS', k, 'explanation') == 1 then
  redis.call('ZREM', KEYS[2], id)
  return 'skip'
end
-- A map sent again by the sweep has no holder: any of its messages may take it.
local holder = redis.call('HGET', k, 'map_owner')
if holder and holder ~= owner and tonumber(redis.call('HGET', k, 'map_lease_until')) > now then
  return 'skip'
end
if tonumber(redis.call('HGET', k, 'map_attempts') or '0') >= tonumber(ARGV[5]) then
  redis.call('HSET', k, 'explanation', ARGV[6], 'explained_at', now)
  redis.call('ZREM', KEYS[2], id)
  return 'gave_up'
end
redis.call('HINCRBY', k, 'map_attempts', 1)
redis.call('HSET', k, 'map_owner', owner, 'map_lease_until', now + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
return 'run'
"""

# A webhook's delivery has an outcome (delivered, refused, or failed after its retries): noted in
# the record, if it still exists, and the job out of the webhooks owed, in one step.
# KEYS: the record, webhooks owed. ARGV: job id, outcome.
SETTLE_WEBHOOK = """
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'webhook', ARGV[2])
return 1
"""

# Webhooks owed with no outcome a lease after they fell due: the process that recorded the
# verdict died before sending the task, or the task was lost with its worker. Each is due
# again from now (sent again once more a lease on if this send is lost too), its resends
# counted in the record ('webhook_resends', gone with it); one already sent again `most` times
# (its task keeps dying short of an outcome) is settled as given up (ARGV[5]) and leaves the
# outbox instead, rather than being sent every lease until the record expires. One whose job is
# gone (deleted, expired) or has its outcome is dropped. Returns {ids to send again, ids given
# up}. KEYS: webhooks owed. ARGV: the records' key prefix, now, lease seconds, most resends,
# the give-up outcome.
LAPSED_WEBHOOKS = """
local now, most, again, gave_up = tonumber(ARGV[2]), tonumber(ARGV[4]), {}, {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))) do
  local k = ARGV[1] .. id
  if redis.call('HEXISTS', k, 'callback') == 0 or redis.call('HEXISTS', k, 'webhook') == 1 then
    redis.call('ZREM', KEYS[1], id)
  elseif tonumber(redis.call('HGET', k, 'webhook_resends') or '0') >= most then
    redis.call('HSET', k, 'webhook', ARGV[5])
    redis.call('ZREM', KEYS[1], id)
    table.insert(gave_up, id)
  else
    redis.call('HINCRBY', k, 'webhook_resends', 1)
    redis.call('ZADD', KEYS[1], now, id)
    table.insert(again, id)
  end
end
return {again, gave_up}
"""
