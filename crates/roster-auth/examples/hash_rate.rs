//! The raw argon2id ceiling of this machine: verifications per second on the same bounded pool the
//! server uses (one worker per core, each reusing its memory), with the server's default parameters
//! unless overridden. `bench/run.sh` divides the password-login rate by this figure.
//!
//! `cargo run --release -p roster-auth --example hash_rate -- [seconds] [memory_kib] [iterations]`

use std::time::{Duration, Instant};

use roster_auth::{HasherConfig, PasswordHasher};
use roster_domain::Password;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let defaults = HasherConfig::default();
    let memory_kib = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(defaults.memory_kib);
    let iterations = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(defaults.iterations);
    let cfg = HasherConfig { memory_kib, iterations, ..defaults };
    let Ok(hasher) = PasswordHasher::new(cfg) else {
        eprintln!("cannot start the hasher");
        std::process::exit(1);
    };
    let Ok(p) = Password::for_verification("correct horse battery staple".to_owned()) else { std::process::exit(1) };
    let Ok(phc) = hasher.hash(p).await else {
        eprintln!("hash failed");
        std::process::exit(1);
    };
    // Keep every worker busy: as many verifications in flight as workers, plus one queued each.
    let in_flight = hasher.threads() * 2;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let h = hasher.clone();
        let phc = phc.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if let Ok(p) = Password::for_verification("correct horse battery staple".to_owned())
                    && matches!(h.verify(p, phc.clone()).await, Ok(true))
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{{\"verifications\": {total}, \"seconds\": {elapsed:.3}, \"per_second\": {:.1}, \"threads\": {}, \"memory_kib\": {memory_kib}, \"iterations\": {iterations}}}",
        total as f64 / elapsed,
        hasher.threads()
    );
}
