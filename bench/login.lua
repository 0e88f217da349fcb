-- POST /t/default/oauth/token with the password-realm grant (argon2id verification, profile update,
-- RS256 access and ID tokens), rotating over BENCH_LOGIN_USERS users: brute-force protection charges
-- every attempt before its hash, so one user hammered by 32 connections at once would see its
-- in-flight attempts exceed max_attempts. BENCH_LOGIN_BODY is the urlencoded form body of user 0; the
-- others differ only in the number in the username.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local reqs = {}
local n = 0
local i = 0

function init(args)
   local body = os.getenv("BENCH_LOGIN_BODY")
   local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
   n = tonumber(os.getenv("BENCH_LOGIN_USERS"))
   for k = 0, n - 1 do
      reqs[k + 1] = wrk.format("POST", nil, headers, (body:gsub("bench%-login%-0%%40", "bench-login-" .. k .. "%%40")))
   end
   i = math.floor((tid - 1) * n / 2) % n
end

function request()
   i = i % n + 1
   return reqs[i]
end
