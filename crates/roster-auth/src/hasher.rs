//! Password hashing with argon2id on a fixed pool of OS threads, off the async runtime.
//!
//! Why a pool of our own rather than `spawn_blocking`: each worker owns one argon2 memory buffer
//! (19 MiB by default) that every hash reuses, so a hash allocates nothing, and the number of hashes
//! in flight — hence peak memory — is bounded by the number of workers. A worker allocates its buffer
//! at its first job, not at start: a server that has not hashed yet does not hold 19 MiB per core.
//! Work waits in a bounded queue; when it is full the caller gets `HashError::Overloaded` at once
//! (answer 503/429, never pile up).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use roster_domain::Password;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

/// argon2id parameters and pool size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherConfig {
    /// Memory in KiB (OWASP: 19 MiB = 19456).
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Jobs allowed to wait for a worker before new work is refused.
    pub queue: usize,
}

impl Default for HasherConfig {
    fn default() -> Self {
        Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1, threads: 0, queue: 256 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("too many password operations in progress")]
    Overloaded,
    #[error("stored password hash is not usable")]
    BadStoredHash,
    #[error("password hashing failed")]
    Failed,
}

enum Job {
    Hash { password: Password, reply: oneshot::Sender<Result<String, HashError>> },
    Verify { password: Password, phc: String, reply: oneshot::Sender<Result<bool, HashError>> },
}

/// Handle to the pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    tx: SyncSender<Job>,
    params: Params,
    threads: usize,
    /// Bytes of hash memory the workers hold now.
    held: Arc<AtomicUsize>,
}

/// Refuse to verify stored hashes that would need more memory than this (a hostile import).
const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;

impl PasswordHasher {
    pub fn new(cfg: HasherConfig) -> Result<Self, HashError> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, Some(32)).map_err(|_| HashError::Failed)?;
        let threads =
            if cfg.threads == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) } else { cfg.threads };
        let (tx, rx) = sync_channel::<Job>(cfg.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let held = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (rx, params, held) = (rx.clone(), params.clone(), held.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(&rx, &params, &held))
                .map_err(|_| HashError::Failed)?;
        }
        Ok(Self { tx, params, threads, held })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Bytes of hash memory the workers hold: none before the first hash, then one buffer per worker
    /// that has hashed.
    pub fn memory_held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Hash a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        rx.await.map_err(|_| HashError::Failed)?
    }

    /// Check a password against a stored PHC string. `Ok(false)` for a wrong password.
    pub async fn verify(&self, password: Password, phc: String) -> Result<bool, HashError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Verify { password, phc, reply })?;
        rx.await.map_err(|_| HashError::Failed)?
    }

    /// True when a stored hash uses other parameters than the configured ones (rehash at next login).
    pub fn needs_rehash(&self, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(h) => h.algorithm.as_str() != "argon2id" || Params::try_from(&h).map(|p| p != self.params).unwrap_or(true),
            Err(_) => true,
        }
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(HashError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(HashError::Failed),
        }
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, params: &Params, held: &AtomicUsize) {
    // Sized by the first job (`resize` in hash_with/verify_with).
    let mut memory: Vec<Block> = Vec::new();
    let ours = params.block_count();
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let before = memory.len();
        match job {
            Job::Hash { password, reply } => {
                let r = hash_with(params, password.expose().as_bytes(), &mut memory);
                account(held, before, memory.len());
                let _ = reply.send(r);
            }
            Job::Verify { password, phc, reply } => {
                let r = verify_with(password.expose().as_bytes(), &phc, &mut memory);
                account(held, before, memory.len());
                let _ = reply.send(r);
            }
        }
        // A stored hash with more memory than ours (an import, up to MAX_VERIFY_MEMORY_KIB) grew the
        // buffer: give the rest back rather than keep it for the life of the server.
        if memory.len() > ours {
            let grown = memory.len();
            memory.truncate(ours);
            memory.shrink_to_fit();
            account(held, grown, ours);
        }
    }
}

/// Move the pool's count of held memory from `before` to `after` blocks of one worker.
fn account(held: &AtomicUsize, before: usize, after: usize) {
    let block = std::mem::size_of::<Block>();
    if after >= before {
        held.fetch_add((after - before) * block, Ordering::Relaxed);
    } else {
        held.fetch_sub((before - after) * block, Ordering::Relaxed);
    }
}

fn hash_with(params: &Params, pwd: &[u8], memory: &mut Vec<Block>) -> Result<String, HashError> {
    let salt_bytes = roster_domain::secret::random_bytes(16);
    let salt = Salt::new(&salt_bytes).map_err(|_| HashError::Failed)?;
    let mut out = [0u8; 32];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    memory.resize(params.block_count(), Block::new());
    argon.hash_password_into_with_memory(pwd, &salt_bytes, &mut out, &mut memory[..]).map_err(|_| HashError::Failed)?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|_| HashError::Failed)?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|_| HashError::Failed)?),
    };
    Ok(phc.to_string())
}

fn verify_with(pwd: &[u8], phc: &str, memory: &mut Vec<Block>) -> Result<bool, HashError> {
    let h = PasswordHash::new(phc).map_err(|_| HashError::BadStoredHash)?;
    let algorithm = Algorithm::try_from(h.algorithm.as_str()).map_err(|_| HashError::BadStoredHash)?;
    let version = match h.version {
        Some(v) => Version::try_from(v).map_err(|_| HashError::BadStoredHash)?,
        None => Version::V0x10,
    };
    let expected = h.hash.ok_or(HashError::BadStoredHash)?;
    let salt = h.salt.ok_or(HashError::BadStoredHash)?;
    let base = Params::try_from(&h).map_err(|_| HashError::BadStoredHash)?;
    if base.m_cost() > MAX_VERIFY_MEMORY_KIB {
        return Err(HashError::BadStoredHash);
    }
    let params =
        Params::new(base.m_cost(), base.t_cost(), base.p_cost(), Some(expected.len())).map_err(|_| HashError::BadStoredHash)?;
    memory.resize(params.block_count(), Block::new());
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    argon
        .hash_password_into_with_memory(pwd, &salt, &mut out, &mut memory[..params.block_count()])
        .map_err(|_| HashError::Failed)?;
    Ok(out.as_slice().ct_eq(expected.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> PasswordHasher {
        PasswordHasher::new(HasherConfig { memory_kib: 1024, iterations: 1, parallelism: 1, threads: 2, queue: 8 }).expect("pool")
    }

    fn pw(s: &str) -> Password {
        Password::for_verification(s.to_owned()).expect("valid")
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = small();
        let phc = h.hash(pw("correct horse battery staple")).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(h.verify(pw("correct horse battery staple"), phc.clone()).await.expect("verify"));
        assert!(!h.verify(pw("correct horse battery stapl"), phc.clone()).await.expect("verify"));
        assert!(!h.verify(pw("Correct horse battery staple"), phc.clone()).await.expect("verify"));
        assert!(!h.needs_rehash(&phc));
    }

    /// Wait (up to 5 s) until the pool holds `bytes` of hash memory.
    async fn until_held(h: &PasswordHasher, bytes: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while h.memory_held() != bytes {
            assert!(std::time::Instant::now() < deadline, "holds {} bytes, expected {bytes}", h.memory_held());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn memory_is_taken_at_the_first_hash() {
        let h = small();
        assert_eq!(h.memory_held(), 0, "no buffer before the first job");
        h.hash(pw("violet harbor umbrella")).await.expect("hash");
        assert_eq!(h.memory_held(), 1024 * 1024, "the worker that hashed holds one buffer");
    }

    #[tokio::test]
    async fn a_bigger_stored_hash_does_not_leave_a_bigger_buffer() {
        let cfg = HasherConfig { memory_kib: 1024, iterations: 1, parallelism: 1, threads: 1, queue: 8 };
        let h = PasswordHasher::new(cfg).expect("pool");
        let big = PasswordHasher::new(HasherConfig { memory_kib: 4096, ..cfg }).expect("pool");
        let phc = big.hash(pw("violet harbor umbrella")).await.expect("hash");
        assert!(h.verify(pw("violet harbor umbrella"), phc).await.expect("verify"));
        until_held(&h, 1024 * 1024).await;
    }

    #[tokio::test]
    async fn salts_differ() {
        let h = small();
        let a = h.hash(pw("same password")).await.expect("hash");
        let b = h.hash(pw("same password")).await.expect("hash");
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn verifies_hashes_made_with_other_parameters() {
        let h = small();
        let other = PasswordHasher::new(HasherConfig { memory_kib: 2048, iterations: 2, parallelism: 1, threads: 1, queue: 1 })
            .expect("pool");
        let phc = other.hash(pw("hunter22")).await.expect("hash");
        assert!(h.verify(pw("hunter22"), phc.clone()).await.expect("verify"));
        assert!(h.needs_rehash(&phc));
        assert_eq!(h.verify(pw("x"), "not a hash".into()).await, Err(HashError::BadStoredHash));
    }

    #[tokio::test]
    async fn default_parameters_are_owasp() {
        let h = PasswordHasher::new(HasherConfig { threads: 1, ..HasherConfig::default() }).expect("pool");
        let phc = h.hash(pw("a long passphrase")).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }
}
