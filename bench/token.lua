-- POST /t/default/oauth/token with the client-credentials grant (a fixed request, built once by wrk).
-- BENCH_TOKEN_BODY is the urlencoded form body.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_TOKEN_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
