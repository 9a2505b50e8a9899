-- http_ndjson.lua - wrk script: POST /v1/positions, BATCH NDJSON lines per
-- request, each line a real position (build/bench/points.txt) of one of
-- the vehicles; bodies are built once in init, so wrk spends its time
-- sending. Positions per second = requests per second x BATCH.
local batch = tonumber(os.getenv("BATCH") or "1000")
local bodies = {}
local nb = 0

init = function(args)
  local points = {}
  for line in io.lines("build/bench/points.txt") do
    local lon, lat = line:match("(%S+) (%S+)")
    points[#points + 1] = {tonumber(lon), tonumber(lat)}
  end
  -- 64 distinct bodies cycling over 64 x BATCH vehicles.
  for b = 0, 63 do
    local lines = {}
    for k = 1, batch do
      local v = b * batch + k
      local p = points[(v % #points) + 1]
      lines[k] = string.format('{"id":"n%d","lon":%.6f,"lat":%.6f}', v, p[1], p[2])
    end
    bodies[b + 1] = table.concat(lines, "\n") .. "\n"
  end
  nb = 64
end

local i = 0
local headers = {["Content-Type"] = "application/x-ndjson"}
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/positions", headers, bodies[(i % nb) + 1])
end

done = function(summary, latency, requests)
  io.write(string.format("result: rps=%.0f positions_per_s=%.0f p50_us=%.0f p99_us=%.0f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    batch * summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
