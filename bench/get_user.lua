-- GET /t/default/api/v2/users/{id}, rotating over every seeded user.
-- BENCH_IDS: file with one percent-encoded user_id a line; BENCH_ACCESS_TOKEN: Management API token.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local reqs = {}
local n = 0
local i = 0

function init(args)
   local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS_TOKEN") }
   for id in io.lines(os.getenv("BENCH_IDS")) do
      if id ~= "" then
         n = n + 1
         reqs[n] = wrk.format("GET", "/t/default/api/v2/users/" .. id, headers)
      end
   end
   -- Threads start at different places in the list.
   i = math.floor((tid - 1) * n / 4) % n
end

function request()
   i = i % n + 1
   return reqs[i]
end
