-- wrk script for `make bench` (bench/run.py starts wrk with it; the settings come from
-- BENCH_* environment variables, read when wrk loads the script).
--
-- BENCH_KIND   hold    POST /api/v1/bookings/hold, each on a distinct future slot
--              book    a hold, then POST /api/v1/bookings with it and the same token
--              cancel  DELETE /api/v1/bookings/<id> for the ids in BENCH_IDS
--              lookup  GET /api/v1/bookings/<an id that does not exist> (404)
--              health  GET /healthz, without a token
-- BENCH_MODE   closed  every connection sends its next request when one is answered
--              open    requests go out on a schedule of BENCH_RATE per second (all
--                      threads together); latency counts from each one's scheduled time,
--                      so a stall delays what was due and is counted, not hidden
--                      (what wrk2 does; Debian ships only wrk)
--
-- wrk's Lua callbacks do not say which connection they are for. Each request carries an
-- X-Request-Id that the server echoes (the gateway does, and so do the naive apps):
-- "bench-<thread>-<n>", and the thread keeps what it needs about request n until it is
-- answered. Results leave through done(), which writes BENCH_OUT.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local CLOCK_MONOTONIC = 1 -- the clock Python's time.monotonic() reads
local timespec = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local kind = os.getenv("BENCH_KIND") or "hold"
local mode = os.getenv("BENCH_MODE") or "closed"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local service_id = os.getenv("BENCH_SERVICE_ID") or ""
local location_id = os.getenv("BENCH_LOCATION_ID") or ""
local first_slot = tonumber(os.getenv("BENCH_FIRST_SLOT") or "0")
local slot_seconds = tonumber(os.getenv("BENCH_SLOT_SECONDS") or "300")
local slot_base = tonumber(os.getenv("BENCH_SLOT_BASE") or "0")
-- Several wrk processes (one per gateway replica) share the slots: process k of n takes
-- every n-th, starting at k.
local slot_stride = tonumber(os.getenv("BENCH_SLOT_STRIDE") or "1")
local slot_offset = tonumber(os.getenv("BENCH_SLOT_OFFSET") or "0")
local out_path = os.getenv("BENCH_OUT")
-- "sequential" in warm-ups, so that the gateway has seen every token before measuring;
-- otherwise each request picks a token at random, as many widgets at once would.
local token_order = os.getenv("BENCH_TOKEN_ORDER") or "random"
-- A closed loop's end (0: none): past this many microseconds from the thread's start no
-- new unit begins, while what is under way (a booking whose hold was answered too)
-- still goes, so that wrk, stopped a drain later, has counted all the stack did.
local stop_after_us = tonumber(os.getenv("BENCH_STOP_AFTER_US") or "0")

local function read_lines(path)
  local lines = {}
  if path then
    for line in io.lines(path) do
      if line ~= "" then lines[#lines + 1] = line end
    end
  end
  return lines
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  threads[#threads + 1] = thread
end

-- Per thread (each wrk thread runs its own copy of this script).
tid = 0
local tokens, ids
local issued = 0 -- request numbers
local waiting = {} -- request number -> {what, scheduled, token, extra (booking id)}
local bookings_due = {} -- holds answered 201 whose booking is still to be sent
local bookings_reserved = 0 -- connections woken for one of them
local schedule = {} -- scheduled times claimed by sleeping connections, oldest first
local slots_taken = 0
local times_taken = 0 -- scheduled times claimed so far
local started_us
local interval_us
local next_id = 0
max_slot = -1
statuses = {} -- "hold 201" -> count
latencies = {} -- microseconds, one per finished unit (open loop only)
answered = {} -- "<booking id> <scheduled us> <answered us> <status>", cancel only
booked = {} -- ids of bookings made, book only

function init(args)
  tokens = read_lines(os.getenv("BENCH_TOKENS"))
  local all_ids = read_lines(os.getenv("BENCH_IDS"))
  ids = {}
  for i = tid + 1, #all_ids, nthreads do ids[#ids + 1] = all_ids[i] end
  if rate > 0 then interval_us = 1000000 / rate end
  math.randomseed(tid * 7919 + os.time())
end

local function count(what, status)
  local key = what .. " " .. status
  statuses[key] = (statuses[key] or 0) + 1
end

local function next_slot_iso()
  local index = slot_base + (slots_taken * nthreads + tid) * slot_stride + slot_offset
  slots_taken = slots_taken + 1
  if index > max_slot then max_slot = index end
  return os.date("!%Y-%m-%dT%H:%M:%S+00:00", first_slot + index * slot_seconds)
end

local function send(what, method, path, token, body, scheduled, extra)
  issued = issued + 1
  waiting[issued] = { what = what, scheduled = scheduled, token = token, extra = extra }
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[token],
    ["X-Request-Id"] = "bench-" .. tid .. "-" .. issued,
  }
  if body then headers["Content-Type"] = "application/json" end
  return wrk.format(method, path, headers, body)
end

local tokens_used = 0

local function next_token()
  if token_order == "sequential" then
    tokens_used = tokens_used + 1
    return (tokens_used * nthreads + tid) % #tokens + 1
  end
  return math.random(#tokens)
end

local function hold_request(scheduled)
  local token = next_token()
  local body = '{"service_id":"' .. service_id .. '","location_id":"' .. location_id
    .. '","starts_at":"' .. next_slot_iso() .. '"}'
  return send("hold", "POST", "/api/v1/bookings/hold", token, body, scheduled)
end

local function booking_request(due)
  local body = '{"hold_id":"' .. due.hold_id
    .. '","client":{"first_name":"Bench","last_name":"Client","email":"bench@example.com"}}'
  return send("book", "POST", "/api/v1/bookings", due.token, body, due.scheduled)
end

local function cancel_request(scheduled)
  next_id = next_id + 1
  local id = ids[next_id]
  return send("cancel", "DELETE", "/api/v1/bookings/" .. id, math.random(#tokens), nil,
    scheduled, id)
end

local function lookup_request(scheduled)
  local id = string.format("%08x-0000-4000-8000-%012x", math.random(0, 0x7fffffff),
    math.random(0, 0x7fffffff))
  return send("lookup", "GET", "/api/v1/bookings/" .. id, next_token(), nil, scheduled)
end

local function health_request(scheduled)
  issued = issued + 1
  waiting[issued] = { what = "health", scheduled = scheduled }
  return wrk.format("GET", "/healthz", { ["X-Request-Id"] = "bench-" .. tid .. "-" .. issued })
end

local function first_request(scheduled)
  if kind == "cancel" then return cancel_request(scheduled) end
  if kind == "lookup" then return lookup_request(scheduled) end
  if kind == "health" then return health_request(scheduled) end
  return hold_request(scheduled)
end

local function out_of_ids()
  return kind == "cancel" and next_id + #schedule >= #ids
end

if mode == "open" or kind == "cancel" or stop_after_us > 0 then
  -- A connection that is free asks how long to wait before its next request: a
  -- booking whose hold was just answered goes at once; otherwise it takes the next
  -- scheduled time (in a closed loop, now).
  function delay()
    local now = now_us()
    if started_us == nil then started_us = now end
    if #bookings_due > bookings_reserved then
      bookings_reserved = bookings_reserved + 1
      return 0
    end
    if out_of_ids() then return 3600000 end -- idle until run.py stops wrk
    if stop_after_us > 0 and now - started_us >= stop_after_us then return 3600000 end
    if mode == "closed" then
      schedule[#schedule + 1] = now
      return 0
    end
    local at = started_us + (times_taken * nthreads + tid) * interval_us
    times_taken = times_taken + 1
    schedule[#schedule + 1] = at
    local wait_ms = math.ceil((at - now) / 1000)
    if wait_ms < 0 then wait_ms = 0 end
    return wait_ms
  end
end

-- wrk asks for one request at start only to check the script, and never sends it; with
-- delay() defined, any request not preceded by a delay() call (that one, or one after a
-- reconnect) is a GET /healthz, so that no id is used up and nothing scheduled goes early.
local function warm_up()
  issued = issued + 1
  waiting[issued] = { what = "connect", scheduled = now_us() }
  return wrk.format("GET", "/healthz", { ["X-Request-Id"] = "bench-" .. tid .. "-" .. issued })
end

function request()
  if bookings_reserved > 0 or (delay == nil and #bookings_due > 0) then
    if bookings_reserved > 0 then bookings_reserved = bookings_reserved - 1 end
    return booking_request(table.remove(bookings_due, 1))
  end
  if delay == nil then return first_request(now_us()) end
  if #schedule == 0 then return warm_up() end
  return first_request(table.remove(schedule, 1))
end

function response(status, headers, body)
  local now = now_us()
  local request_id = headers["X-Request-Id"] or headers["x-request-id"]
  local n = request_id and tonumber(string.match(request_id, "^bench%-%d+%-(%d+)$"))
  local sent = n and waiting[n]
  if not sent then
    count("unknown", status)
    return
  end
  waiting[n] = nil
  count(sent.what, status)
  if sent.what == "hold" and kind == "book" and status == 201 then
    local hold_id = string.match(body, '"hold_id"%s*:%s*"([^"]+)"')
    bookings_due[#bookings_due + 1] = { hold_id = hold_id, token = sent.token,
      scheduled = sent.scheduled }
    return
  end
  if sent.what == "book" and status == 201 then
    booked[#booked + 1] = string.match(body, '"id"%s*:%s*"([^"]+)"')
  end
  if sent.what == "connect" then return end
  if sent.what == "cancel" then
    answered[#answered + 1] = string.format("%s %.1f %.1f %d", sent.extra, sent.scheduled,
      now, status)
  end
  if mode == "open" then latencies[#latencies + 1] = now - sent.scheduled end
end

function done(summary, latency, requests)
  local out = assert(io.open(out_path, "w"))
  out:write(string.format("requests %d\n", summary.requests))
  out:write(string.format("duration_us %d\n", summary.duration))
  for _, name in ipairs({ "connect", "read", "write", "status", "timeout" }) do
    out:write(string.format("error %s %d\n", name, summary.errors[name]))
  end
  for _, quantile in ipairs({ 50, 99, 99.9 }) do
    out:write(string.format("wrk_latency_us %s %d\n", quantile, latency:percentile(quantile)))
  end
  for _, thread in ipairs(threads) do
    for key, value in pairs(thread:get("statuses")) do
      out:write(string.format("status %s %d\n", key, value))
    end
    for _, value in ipairs(thread:get("latencies")) do
      out:write(string.format("latency_us %.1f\n", value))
    end
    for _, line in ipairs(thread:get("answered")) do out:write("answered " .. line .. "\n") end
    for _, id in ipairs(thread:get("booked")) do out:write("booked " .. id .. "\n") end
    out:write(string.format("max_slot %d\n", thread:get("max_slot")))
  end
  out:close()
end
