-- wrk script for bench/api_load.py: GETs, or POSTs of generation requests with one API key per thread.
--
--   wrk -t16 -c16 -s api_load.lua URL                                   (GET URL)
--   AIGEN_BENCH_KEYS=KEYS_FILE wrk -t16 -c16 -s api_load.lua URL        (POST a generation request)
--   AIGEN_BENCH_IDEMPOTENCY=1 ...                                       (each with an Idempotency-Key,
--                                                                        as the PWA sends them)
--
-- Run with as many threads as connections: each thread then owns one connection, so "one key per
-- thread" is one key per connection (KEYS_FILE: one key a line, taken round-robin; one line for a hot
-- account). Answers are counted per status and printed by done() as name=value lines for the bench.

local threads = {}
local keys = nil

local function read_keys(path)
  local found = {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(found, line)
    end
  end
  return found
end

-- setup() runs in wrk's main Lua state, which sees no script arguments: the keys come by environment
local keys_file = os.getenv("AIGEN_BENCH_KEYS")
local idempotency = os.getenv("AIGEN_BENCH_IDEMPOTENCY") == "1"
local run_id = tostring(os.time())  -- keys stay new from one wrk run to the next on the same database

function setup(thread)
  thread:set("index", #threads + 1)
  if keys_file then
    keys = keys or read_keys(keys_file)
    thread:set("api_key", keys[(#threads % #keys) + 1])
  end
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  sent = 0
  replayed = 0
end

function request()
  if not api_key then
    return wrk.format("GET")
  end
  sent = sent + 1
  local body = string.format(
    '{"backend":"external","model":"bench-model","task":"text","prompt":"bench %d-%d"}', index, sent
  )
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. api_key,
  }
  if idempotency then
    headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", run_id, index, sent)
  end
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if headers["Idempotent-Replayed"] then
    replayed = replayed + 1  -- a key sent twice: the bench's keys must all be new
  end
end

function done(summary, latency, requests)
  local counted, replays = {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counted[status] = (counted[status] or 0) + count
    end
    replays = replays + thread:get("replayed")
  end
  io.write(string.format("wrk_replayed=%d\n", replays))
  for status, count in pairs(counted) do
    io.write(string.format("wrk_status_%d=%d\n", status, count))
  end
  local errors = summary.errors
  io.write(string.format("wrk_requests=%d\n", summary.requests))
  io.write(string.format("wrk_duration_s=%.3f\n", summary.duration / 1e6))
  io.write(string.format("wrk_socket_errors=%d\n", errors.connect + errors.read + errors.write + errors.timeout))
  io.write(string.format("wrk_timeouts=%d\n", errors.timeout))
  for _, p in ipairs({ 50, 90, 99 }) do
    io.write(string.format("wrk_latency_p%d_ms=%.2f\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("wrk_latency_max_ms=%.2f\n", latency.max / 1000))
end
