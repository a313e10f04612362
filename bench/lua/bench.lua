-- wrk script for bench/run.py: one request shape per run, and a machine-readable summary.
--
-- args (after `--`): METHOD BODY [PATH ...]
--   BODY "-" sends no body; "{n}" in BODY becomes a random number 1..1000 per request.
--   PATHs, when given, are picked at random per request (e.g. several conversations);
--   otherwise the URL's path is used. Headers come from wrk's -H options.

local method, body, paths = "GET", nil, {}

function init(args)
  method = args[1] or "GET"
  if args[2] and args[2] ~= "-" then
    body = args[2]
  end
  for i = 3, #args do
    paths[#paths + 1] = args[i]
  end
  -- Each wrk thread has its own Lua state; seed each differently.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  local path = nil
  if #paths > 0 then
    path = paths[math.random(1, #paths)]
  end
  local payload = body
  if payload then
    payload = payload:gsub("{n}", tostring(math.random(1, 1000)))
  end
  return wrk.format(method, path, nil, payload)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
