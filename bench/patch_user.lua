-- PATCH /t/default/api/v2/users/{id} with {"user_metadata":{KEY:VALUE}}: each request updates one attribute,
-- the key of its wrk thread ("bench_1", "bench_2"), to a value never sent before (BENCH_TAG, the wrk run's start
-- time, the thread number and a per-thread counter), so every request is a real change and a user's metadata keeps its size however
-- many rounds run; it walks over every seeded user so that consecutive requests touch different rows.
-- BENCH_IDS, BENCH_ACCESS_TOKEN: as in get_user.lua.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local paths = {}
local n = 0
local i = 0
local seq = 0
local started = 0
local headers
local tag = os.getenv("BENCH_TAG") or "r"

function init(args)
   started = os.time()
   headers = {
      ["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS_TOKEN"),
      ["Content-Type"] = "application/json",
   }
   for id in io.lines(os.getenv("BENCH_IDS")) do
      if id ~= "" then
         n = n + 1
         paths[n] = "/t/default/api/v2/users/" .. id
      end
   end
   i = math.floor((tid - 1) * n / 4) % n
end

function request()
   i = i % n + 1
   seq = seq + 1
   local body = string.format('{"user_metadata":{"bench_%d":"value %s.%d.%d.%d"}}', tid, tag, started, tid, seq)
   return wrk.format("PATCH", paths[i], headers, body)
end
