-- PATCH /t/default/api/v2/users/{id} with {"user_metadata":{KEY:VALUE}}: each request adds a key never sent
-- before (key and value carry BENCH_TAG, the thread number and a per-thread counter), walking over every
-- seeded user so that consecutive requests touch different rows; so every user's metadata grows through the
-- test (~45 keys, ~1.5 KB, after 12 s at ~12k/s over 3,000 users). The PATCH test up to session 9, now an
-- information row of the report; the measured PATCH is patch_user.lua.
-- BENCH_IDS, BENCH_ACCESS_TOKEN: as in get_user.lua.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local paths = {}
local n = 0
local i = 0
local seq = 0
local headers
local tag = os.getenv("BENCH_TAG") or "r"

function init(args)
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
   local body = string.format('{"user_metadata":{"%s_%d_%d":"value %s.%d.%d"}}', tag, tid, seq, tag, tid, seq)
   return wrk.format("PATCH", paths[i], headers, body)
end
