"""The job store's Lua scripts (shared/jobs.py runs them): each a step Redis makes atomically.

Job keys are built inside the scripts from the prefix: fine on one Redis, not on a Redis
Cluster. Only shared/jobs.py may touch these keys (tests/test_layout_store.py).
"""

# Failing a job that has used up its attempts, as FINISH would (once, out of every pool it is
# in, its waiters woken) but inside the script that found it, so no other claim or sweep can
# hand it out in between. `why` is a format whose %d is the number of attempts made.
GIVE_UP = """
local function give_up(prefix, id, now, why, pools)
  local k = prefix .. 'job:' .. id
  local tries = tonumber(redis.call('HGET', k, 'attempts') or '0')
  redis.call('HSET', k, 'status', 'failed', 'error', string.format(why, tries),
             'finished_at', now)
  redis.call('HINCRBY', k, 'finishes', 1)
  for _, pool in ipairs(pools) do redis.call('ZREM', pool, id) end
  redis.call('RPUSH', prefix .. 'done:' .. id, '1')
  redis.call('EXPIRE', prefix .. 'done:' .. id, 120)
end
"""

# Claiming: one atomic step with an owner (the Celery task id) and a lease. The own job's kind
# picks the pools: a still's task fills its micro-batch from the stills' ready set (lapsed
# leases first, then the oldest waiting) and never takes a video; a video's task takes its own
# video alone (one video a task keeps it inside the time limit). A job leased to another live
# owner is left alone, so a job claimed into one worker's batch never runs again when its own
# task reaches another worker. A task redelivered after its worker died (same task id) takes
# back its whole batch (the owner set): those jobs, and only those, run twice.
# A job it would take that has been claimed DFD_MAX_ATTEMPTS times already (each claim counts
# one; a job is claimed again only when its worker died or ran out of time) is failed instead
# (GIVE_UP), so a job that kills its worker is not run again and again. Returns {running ids,
# ids given up}.
# KEYS: stills ready, stills leased, videos ready, videos leased, the owner's set.
# ARGV: prefix, owner, own job id, extra, now, lease seconds, most attempts, why (a format).
CLAIM = GIVE_UP + """
local prefix, owner, own = ARGV[1], ARGV[2], ARGV[3]
local extra, now, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cap, why = tonumber(ARGV[7]), ARGV[8]
local gave_up = {}
local media = redis.call('HGET', prefix .. 'job:' .. own, 'media') or 'image'
local ready, leased = KEYS[1], KEYS[2]
if media == 'video' then ready, leased, extra = KEYS[3], KEYS[4], 0 end
local claimed, seen = {}, {}
local function take(id)
  if seen[id] then return end
  seen[id] = true
  local k = prefix .. 'job:' .. id
  local st = redis.call('HGET', k, 'status')
  if (not st) or st == 'done' or st == 'failed' then
    for i = 1, 4 do redis.call('ZREM', KEYS[i], id) end
    return
  end
  if (redis.call('HGET', k, 'media') or 'image') ~= media then return end
  if st == 'running' then
    local holder = redis.call('HGET', k, 'owner')
    local till = tonumber(redis.call('HGET', k, 'lease_until') or '0')
    if holder ~= owner and till > now then return end
  end
  if tonumber(redis.call('HGET', k, 'attempts') or '0') >= cap then
    give_up(prefix, id, now, why, {KEYS[1], KEYS[2], KEYS[3], KEYS[4]})
    table.insert(gave_up, id)
    return
  end
  redis.call('HSET', k, 'status', 'running', 'started_at', now, 'owner', owner,
             'lease_until', now + lease)
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('ZREM', ready, id)
  redis.call('ZADD', leased, now + lease, id)
  redis.call('SADD', KEYS[5], id)
  table.insert(claimed, id)
end
take(own)
for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do take(id) end
local want = extra - (#claimed - 1)
if want > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, want)) do
    take(id)
  end
end
want = extra - (#claimed - 1)
if want > 0 then
  for _, id in ipairs(redis.call('ZRANGE', ready, 0, want - 1)) do take(id) end
end
if #claimed > 0 then redis.call('EXPIRE', KEYS[5], math.ceil(lease) + 60) end
return {claimed, gave_up}
"""

# Finishing is atomic and happens once: a redelivered task that finds the job final does nothing.
# KEYS: the record, its done token, stills leased, videos leased, [the reuse index entry].
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
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[5], 'EX', ARGV[6]) end
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

# Videos whose lease lapsed (their task was killed at the hard time limit and never comes
# back; a still's is taken over by the next still's claim instead) go back to their ready pool,
# queued, to be sent again; one that has used up its attempts is failed instead (GIVE_UP): a
# video that always outlives the limit would otherwise be sent again forever. Returns {id,
# priority pairs sent again, ids given up}.
# KEYS: videos leased, videos ready. ARGV: prefix, now, most attempts, why (a format).
RELEASE_LAPSED = GIVE_UP + """
local again, gave_up = {}, {}
local prefix, now, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  local k = prefix .. 'job:' .. id
  redis.call('ZREM', KEYS[1], id)
  if redis.call('HGET', k, 'status') ~= 'running' then
    -- final meanwhile, or gone: nothing to do
  elseif tonumber(redis.call('HGET', k, 'attempts') or '0') >= cap then
    give_up(prefix, id, now, ARGV[4], {KEYS[1], KEYS[2]})
    table.insert(gave_up, id)
  else
    redis.call('HSET', k, 'status', 'queued')
    redis.call('HDEL', k, 'owner', 'lease_until')
    redis.call('ZADD', KEYS[2], redis.call('HGET', k, 'created_at'), id)
    table.insert(again, id)
    table.insert(again, redis.call('HGET', k, 'priority') or '')
  end
end
return {again, gave_up}
"""
