-- POST /t/default/oauth/token with the right password for a pair (identifier + IP) that brute-force
-- protection has blocked: every answer must be 429 too_many_attempts, computed without a hash.
-- BENCH_REFUSED_BODY is the urlencoded form body.
--
-- No per-response Lua callback: wrk calling into Lua for every response costs more CPU than the
-- refusal itself and would measure wrk rather than the server. run.sh checks with curl beforehand
-- that this exact request answers 429; during the run every answer must be >= 400 (wrk's count of
-- such statuses equals the request count), and any answer below 400 is reported as an error.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_REFUSED_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local common_done = done
function done(summary, latency, requests)
   -- In place of wrk's count of responses >= 400 (all expected here): the answers below 400.
   summary.errors.status = summary.requests - summary.errors.status
   common_done(summary, latency, requests)
end
