/**
 * Lua scripts of the Redis store. Each runs atomically on the one node that holds the document's
 * hash slot, which is what makes appends and compactions safe with many server instances.
 */

/**
 * How scripts notify subscribers: `PUBLISH` on one Redis; on a cluster `SPUBLISH`, which goes to
 * the document's own node only (and its replicas) instead of to every node over the cluster bus.
 */
export type PublishCommand = 'PUBLISH' | 'SPUBLISH'

/** Updates up to this size are published with their notification (see {@link APPEND}). */
export const INLINE_UPDATE_BYTES = 16 * 1024

/**
 * KEYS: meta, log, stateVector, state, and on one Redis (not a cluster: other slots) the change
 * feed's log, meta and docs (see `changesKeys`). ARGV: update, epoch if new, channel, maximum
 * document bytes (0: none), document ID, feed retention, feed channel, then (client, from, to)
 * triplets extending the state vector. Returns {epoch, id, pendingUpdates, pendingBytes, previous
 * ID}, or -1 when the document would grow past its maximum.
 */
export const APPEND = (publish: PublishCommand): string => `
local limit = tonumber(ARGV[4])
if limit > 0 then
  local size = redis.call('STRLEN', KEYS[4]) + tonumber(redis.call('HGET', KEYS[1], 'pendingBytes') or '0')
  if size + string.len(ARGV[1]) > limit then return -1 end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'compacted', '0-0', 'floor', '0-0')
end
local previous = redis.call('HGET', KEYS[1], 'head') or '0-0'
local id = redis.call('XADD', KEYS[2], '*', 'u', ARGV[1])
local n = redis.call('HINCRBY', KEYS[1], 'pendingUpdates', 1)
local b = redis.call('HINCRBY', KEYS[1], 'pendingBytes', string.len(ARGV[1]))
redis.call('HSET', KEYS[1], 'head', id)
for i = 8, #ARGV, 3 do
  local current = tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) <= current and tonumber(ARGV[i + 2]) > current then
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
  end
end
-- A small update travels in the notification, with the entry before it: a reader whose cursor is
-- there takes it without reading the log. A larger one is only announced.
if string.len(ARGV[1]) <= ${INLINE_UPDATE_BYTES} then
  redis.call('${publish}', ARGV[3], 'U' .. epoch .. '\\n' .. previous .. '\\n' .. id .. '\\n' .. ARGV[1])
else
  redis.call('${publish}', ARGV[3], 'u' .. epoch .. '\\n' .. id)
end
if #KEYS > 4 then
  -- The change feed, in the same step: no change in one log without the other.
  local feedEpoch = redis.call('HGET', KEYS[6], 'epoch')
  if not feedEpoch then
    feedEpoch = ARGV[2]
    redis.call('HSET', KEYS[6], 'epoch', feedEpoch, 'trimmed', '0-0')
  end
  local change = redis.call('XADD', KEYS[5], '*', 'd', ARGV[5], 'e', epoch .. '.' .. id)
  redis.call('HSET', KEYS[6], 'head', change)
  -- Trim exactly, remembering the newest entry removed: readers behind it get a reset, not a gap.
  local excess = redis.call('XLEN', KEYS[5]) - tonumber(ARGV[6])
  if excess > 0 then
    local removed = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', excess)
    local floor = removed[#removed][1]
    redis.call('XTRIM', KEYS[5], 'MINID', floor)
    redis.call('XDEL', KEYS[5], floor)
    redis.call('HSET', KEYS[6], 'trimmed', floor)
  end
  redis.call('ZADD', KEYS[7], tonumber(string.match(change, '^%d+')), ARGV[5])
  redis.call('PUBLISH', ARGV[7], 'c')
end
return {epoch, id, n, b, previous}
`

/** KEYS: the change feed's log and meta. ARGV: stream ID, count. Returns {epoch, trimmed, head, entries after the ID}. */
export const READ_CHANGES = `
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'trimmed', 'head')
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {meta[1] or '', meta[2] or '0-0', meta[3] or '0-0', entries}
`

/**
 * KEYS: meta, log, stateVector, checkpoints. ARGV: stream ID, most bytes of entries to return (-1:
 * no limit). Returns {meta, stateVector, entries after it (none when they are more bytes than
 * that), whether they are all there (1 or 0), whether it exists, the checkpoints when it does not}.
 * With a limit the log is read in pages, and no further than the limit.
 */
export const READ_AFTER = `
local meta = redis.call('HGETALL', KEYS[1])
local sv = redis.call('HGETALL', KEYS[3])
local limit = tonumber(ARGV[2])
local entries = {}
local complete = 1
if limit < 0 then
  entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+')
else
  local size = 0
  local from = '(' .. ARGV[1]
  repeat
    local page = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', 128)
    for i = 1, #page do
      size = size + string.len(page[i][2][2])
      entries[#entries + 1] = page[i]
    end
    if size > limit then
      entries = {}
      complete = 0
      break
    end
    if #page > 0 then from = '(' .. page[#page][1] end
  until #page < 128
end
local exists = #redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
local checkpoints = {}
if exists == 0 then checkpoints = redis.call('LRANGE', KEYS[4], 0, -1) end
return {meta, sv, entries, complete, exists, checkpoints}
`

/** KEYS: meta, log, stateVector, state, checkpoints. Returns {meta, stateVector, state, entries after compacted, checkpoints}. */
export const READ_FULL = `
local meta = redis.call('HGETALL', KEYS[1])
local compacted = '0-0'
for i = 1, #meta, 2 do
  if meta[i] == 'compacted' then compacted = meta[i + 1] end
end
local sv = redis.call('HGETALL', KEYS[3])
local state = redis.call('GET', KEYS[4]) or ''
local entries = redis.call('XRANGE', KEYS[2], '(' .. compacted, '+')
local checkpoints = redis.call('LRANGE', KEYS[5], 0, -1)
return {meta, sv, state, entries, checkpoints}
`

/**
 * KEYS: meta, state, log, checkpoints, stateVector. ARGV: expected epoch, expected compacted,
 * compacted, state, checkpoint, checkpoints kept, tail kept (entries at or before compacted),
 * merged updates, merged bytes, then (client, clock) pairs raising the state vector. Returns 1
 * when committed, 0 when another writer changed the document first.
 */
export const COMMIT_COMPACTION = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'compacted') or '0-0') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[1], 'compacted', ARGV[3])
redis.call('LPUSH', KEYS[4], ARGV[5])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[6]) - 1)
local keep = tonumber(ARGV[7])
local tail = redis.call('XREVRANGE', KEYS[3], ARGV[3], '-', 'COUNT', keep + 1)
if #tail > keep then
  local floor = tail[#tail][1]
  redis.call('XTRIM', KEYS[3], 'MINID', floor)
  redis.call('XDEL', KEYS[3], floor)
  redis.call('HSET', KEYS[1], 'floor', floor)
end
redis.call('HINCRBY', KEYS[1], 'pendingUpdates', '-' .. ARGV[8])
redis.call('HINCRBY', KEYS[1], 'pendingBytes', '-' .. ARGV[9])
for i = 10, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[5], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1]) end
end
return 1
`

/** KEYS: meta, log. ARGV: stream ID, count. Returns {epoch, floor, entries after the ID}. */
export const TAIL = `
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
local floor = redis.call('HGET', KEYS[1], 'floor') or '0-0'
local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {epoch, floor, entries}
`

/** KEYS: all keys of the document, channel last. Deletes them and tells subscribers. */
export const DELETE = (publish: PublishCommand): string => `
for i = 1, #KEYS - 1 do redis.call('DEL', KEYS[i]) end
redis.call('${publish}', KEYS[#KEYS], 'r')
return 1
`

/*
 * The small writes a stream makes when it opens and closes, and presence, are scripts too: one
 * command each, where a MULTI of two or three costs the server a third more CPU in ioredis.
 */

/** KEYS: a stream's positions. ARGV: seq, positions (JSON), TTL (ms). Returns the seqs kept. */
export const SAVE_POSITIONS = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HKEYS', KEYS[1])
`

/** KEYS: presence. ARGV: member, expiry (ms since the epoch), TTL of the set (ms). */
export const OPEN_PRESENCE = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

/** KEYS: presence. ARGV: member, now (ms since the epoch). Returns the members still open. */
export const CLOSE_PRESENCE = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`

/**
 * KEYS: awareness, channel. ARGV: TTL (ms), message, then (clientID, entry) pairs, an empty
 * entry removing the client. Stores the entries and publishes the message.
 */
export const PUBLISH_AWARENESS = (publish: PublishCommand): string => `
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('${publish}', KEYS[2], ARGV[2])
return 1
`
