-- Replays pre-generated, correctly signed requests (signatures are never computed here).
-- Each wrk thread takes every Nth line of the requests file; every request carries its own
-- X-Request-Id, which the server echoes in its JSON answer, so each acknowledged request is
-- written to the thread's acked file: the run can then be checked against the store.
--
-- File format, one request per line, tab-separated:
--   request_id  method  path  header=value;header=value  body

local threads = {}
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "2")
-- A think time per connection (ms) turns the closed loop into a steady, lower rate.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local function split(text, separator)
  local parts = {}
  local start = 1
  while true do
    local i = string.find(text, separator, start, true)
    if not i then
      table.insert(parts, string.sub(text, start))
      return parts
    end
    table.insert(parts, string.sub(text, start, i - 1))
    start = i + #separator
  end
end

function init(args)
  local file = os.getenv("BENCH_REQUESTS")
  requests = {}
  local line_number = 0
  for line in io.lines(file) do
    if line_number % thread_count == index then
      local fields = split(line, "\t")
      local headers = {}
      for _, pair in ipairs(split(fields[4], ";")) do
        local eq = string.find(pair, "=", 1, true)
        if eq then headers[string.sub(pair, 1, eq - 1)] = string.sub(pair, eq + 1) end
      end
      headers["X-Request-Id"] = fields[1]
      table.insert(requests, wrk.format(fields[2], fields[3], headers, fields[5]))
    end
    line_number = line_number + 1
  end
  position = 0
  wrapped = 0
  acked = io.open(os.getenv("BENCH_ACKED") .. "." .. index, "w")
  acked:setvbuf("line")
  statuses = {}
end

function request()
  position = position + 1
  if position > #requests then
    position = 1
    wrapped = wrapped + 1
  end
  return requests[position]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 200 and status < 300 then
    local id = string.match(body, '"request_id":"([^"]+)"')
    if id then acked:write(id, "\n") end
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("BENCH_SUMMARY"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, '
    .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
  out:close()
end
