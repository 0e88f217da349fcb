-- PATCH /t/default/api/v2/users/{id} with {"user_metadata":{KEY:VALUE}}: each request updates one attribute,
-- the key of its wrk thread ("bench_1", "bench_2"), to a value never sent before (BENCH_TAG, the wrk run's
-- start time, the thread number and a per-thread counter), so every request is a real change and a user's
-- metadata keeps its size however many rounds run; it walks over every seeded user so that consecutive
-- requests touch different rows.
-- With BENCH_PATCH_NEW_KEY=1 (the PATCH test up to session 9, now an information row of the report) each
-- request adds a key never sent before instead, so every user's metadata grows through the test (~45 keys,
-- ~1.5 KB, after 12 s at ~12k/s over 3,000 users).
-- BENCH_IDS, BENCH_ACCESS_TOKEN: as in get_user.lua.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local paths = {}
local n = 0
local i = 0
local seq = 0
local started = 0
local headers
local tag = os.getenv("BENCH_TAG") or "r"
local new_key = os.getenv("BENCH_PATCH_NEW_KEY") == "1"

function init(args)
   started = os.time()
   headers = {
      ["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS_TOKEN"),
      ["Content-Type"] = "application/json",
   }
   paths, i = user_paths()
   n = #paths
end

function request()
   i = i % n + 1
   seq = seq + 1
   local body
   if new_key then
      body = string.format('{"user_metadata":{"%s_%d_%d":"value %s.%d.%d"}}', tag, tid, seq, tag, tid, seq)
   else
      body = string.format('{"user_metadata":{"bench_%d":"value %s.%d.%d.%d"}}', tid, tag, started, tid, seq)
   end
   return wrk.format("PATCH", paths[i], headers, body)
end
