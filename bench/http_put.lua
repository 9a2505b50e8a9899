-- http_put.lua - wrk script: PUT /v1/vehicles/{id}/position with keep-alive.
-- Each request moves one of VEHICLES vehicles (round robin per thread) to
-- a real position from build/bench/points.txt plus a few metres, so every
-- ping is applied (not stale, not implausible) and does the full work.
local points = {}
local n = 0
for line in io.lines("build/bench/points.txt") do
  local lon, lat = line:match("(%S+) (%S+)")
  n = n + 1
  points[n] = {tonumber(lon), tonumber(lat)}
end
local vehicles = tonumber(os.getenv("VEHICLES") or "100000")
local i = 0
local headers = {["Content-Type"] = "application/json"}

request = function()
  i = i + 1
  local v = i % vehicles
  local p = points[(v % n) + 1]
  local jitter = (i % 7) * 0.00001
  local body = string.format('{"lon":%.6f,"lat":%.6f,"speed":%d}',
                             p[1] + jitter, p[2] + jitter, i % 60)
  return wrk.format("PUT", "/v1/vehicles/b" .. v .. "/position", headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("result: rps=%.0f p50_us=%.0f p99_us=%.0f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
