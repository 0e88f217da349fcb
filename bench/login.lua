-- POST /t/default/oauth/token with the password-realm grant for one user (argon2id verification,
-- profile update, RS256 access and ID tokens). BENCH_LOGIN_BODY is the urlencoded form body.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_LOGIN_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
