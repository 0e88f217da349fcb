-- GET /t/default/api/v2/users/{id}, rotating over every seeded user.
-- BENCH_IDS: file with one percent-encoded user_id a line; BENCH_ACCESS_TOKEN: Management API token.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local reqs = {}
local n = 0
local i = 0

function init(args)
   local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS_TOKEN") }
   local paths
   paths, i = user_paths()
   n = #paths
   for k, path in ipairs(paths) do
      reqs[k] = wrk.format("GET", path, headers)
   end
end

function request()
   i = i % n + 1
   return reqs[i]
end
