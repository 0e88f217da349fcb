-- GET /healthz: the baseline (a fixed request, built once by wrk).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")
wrk.method = "GET"
