-- POST /t/default/oauth/token with the right password for a pair (identifier + IP) that brute-force
-- protection has blocked: every answer must be 429 too_many_attempts, computed without a hash.
-- BENCH_REFUSED_BODY is the urlencoded form body. A 429 is the expected answer here, so this script
-- counts statuses other than 429 itself and reports them as errors.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_REFUSED_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local threads = {}
local common_setup = setup
function setup(thread)
   common_setup(thread)
   table.insert(threads, thread)
end

unexpected = 0
function response(status, headers, body)
   if status ~= 429 then
      unexpected = unexpected + 1
   end
end

local common_done = done
function done(summary, latency, requests)
   local bad = 0
   for _, t in ipairs(threads) do
      bad = bad + t:get("unexpected")
   end
   -- Report the statuses that were not 429 in place of wrk's count of responses >= 400.
   summary.errors.status = bad
   common_done(summary, latency, requests)
end
