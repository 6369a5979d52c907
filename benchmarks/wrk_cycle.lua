-- wrk script: cycle through a fixed list of request paths (one a line, file given after `--`),
-- each thread from its own offset, and print a one-line JSON summary that features.py parses.
-- wrk keeps each connection busy (closed loop): a new request starts when the previous answer ends.

local threads = {}
local paths = {}
local i = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      paths[#paths + 1] = line
    end
  end
  -- spread threads over the list so that they do not ask for the same bbox in lockstep
  i = math.floor((tid or 0) * #paths / math.max(1, tonumber(args[2]) or 1))
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
