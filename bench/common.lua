-- Shared by every wrk script in bench/: numbers each wrk thread and, when the run is over, prints
-- one machine-readable line that run.sh parses (wrk's own text summary is printed as well).
-- Loaded with dofile(os.getenv("BENCH_DIR") .. "/common.lua").

local counter = 0
function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   -- errors.status counts every response with a status >= 400 (wrk's "Non-2xx or 3xx responses");
   -- run.sh checks beforehand with curl that each request answers exactly 2xx.
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
      "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end

-- The seeded users' paths (BENCH_IDS: one percent-encoded user_id a line), and where this wrk thread
-- starts in the list (threads start at different places).
function user_paths()
   local paths = {}
   for id in io.lines(os.getenv("BENCH_IDS")) do
      if id ~= "" then
         paths[#paths + 1] = "/t/default/api/v2/users/" .. id
      end
   end
   return paths, math.floor((tid - 1) * #paths / 4) % #paths
end
