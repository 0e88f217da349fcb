//! A node's cache of users read by id, for the SQLite backend (one node owns the database).
//!
//! `GET /users/{id}` and every login, `/me` and portal request read a user by id; on SQLite that read
//! (B-tree descents, a row of JSON decoded into a [`User`]) costs more than the rest of the request
//! besides the HTTP exchange itself. Profiles are read far more often than they change, so a node keeps
//! the users it read last, and answers from memory while it can prove the copy is current:
//!
//! - **Writes of this process** end a copy exactly. The two writers of the SQLite backend are covered
//!   in two ways: the group-commit writer's jobs that change a user row forget that user once
//!   committed (before their caller is answered), and any commit of the sqlx write pool (deletes,
//!   tickets, account changes, tenant removal… every other write) makes *every* copy older than it
//!   stale, through the `pool` generation the copy was read under.
//! - **A read racing a write** cannot leave an old copy behind: a copy is stored only if no commit at
//!   all was counted between the start of its read and its insertion (checked under the shard lock
//!   that the writer's `forget` takes too).
//! - **Writes of another process** on the same file (`roster tenant delete` removes a tenant's users, a
//!   second node, a tool) move `PRAGMA data_version` on the group-commit writer's connection, which the
//!   writer looks at before each batch and every 10 ms when idle; a move counts as a pool commit, so
//!   every copy read before it is stale (`sqlite.rs`, `notice_other_writers`).
//! - [`TTL`] is a backstop, and it makes expired copies the first to go when a shard is full.
//!
//! Memory is bounded by a number of users; a full shard drops its expired copies, then all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster_domain::user::User;
use roster_domain::{TenantId, UserId};

/// The longest a copy is served. Writes are seen through the commit counts long before (see above);
/// this bounds what a copy could cost if a path were ever missed.
pub(crate) const TTL: Duration = Duration::from_secs(30);

const SHARDS: usize = 16;

struct Entry {
    user: Arc<User>,
    /// The sqlx write pool's commit count before the read began.
    pool: u64,
    at: Instant,
}

#[derive(Default)]
struct Shard {
    tenants: HashMap<TenantId, HashMap<UserId, Entry>>,
    len: usize,
}

impl Shard {
    fn remove(&mut self, t: &TenantId, id: &UserId) {
        if let Some(users) = self.tenants.get_mut(t)
            && users.remove(id).is_some()
        {
            self.len -= 1;
            if users.is_empty() {
                self.tenants.remove(t);
            }
        }
    }

    /// Room for one more: drop expired copies, then everything if that was not enough.
    fn make_room(&mut self, cap: usize, now: Instant) {
        if self.len < cap {
            return;
        }
        let mut len = 0;
        self.tenants.retain(|_, users| {
            users.retain(|_, e| now.duration_since(e.at) < TTL);
            len += users.len();
            !users.is_empty()
        });
        self.len = len;
        if self.len >= cap {
            self.tenants.clear();
            self.len = 0;
        }
    }
}

pub(crate) struct UserCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl UserCache {
    /// A cache of at most about `capacity` users; `None` for 0 (no cache).
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        })
    }

    fn shard(&self, id: &UserId) -> &Mutex<Shard> {
        // FNV-1a over the id: ids are random hex or caller-chosen, either way well spread.
        let h = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// The copy of a user, if one is current: read under the pool generation `pool_now` and within
    /// [`TTL`].
    pub(crate) fn get(&self, t: &TenantId, id: &UserId, pool_now: u64) -> Option<Arc<User>> {
        let shard = self.shard(id).lock().ok()?;
        let e = shard.tenants.get(t)?.get(id)?;
        (e.pool == pool_now && e.at.elapsed() < TTL).then(|| e.user.clone())
    }

    /// Keep a user read under pool generation `pool` by a read that began when the commit count was
    /// `commits`, unless `commits_now()` (read under the shard lock) says a commit came since.
    pub(crate) fn put(&self, t: &TenantId, user: &Arc<User>, pool: u64, commits: u64, commits_now: impl FnOnce() -> u64) {
        let Ok(mut shard) = self.shard(&user.user_id).lock() else { return };
        if commits_now() != commits {
            return;
        }
        let now = Instant::now();
        shard.remove(t, &user.user_id);
        shard.make_room(self.per_shard, now);
        shard.tenants.entry(t.clone()).or_default().insert(user.user_id.clone(), Entry { user: Arc::clone(user), pool, at: now });
        shard.len += 1;
    }

    /// Drop the copy of a user a write changed (called after its commit was counted).
    pub(crate) fn forget(&self, t: &TenantId, id: &UserId) {
        if let Ok(mut shard) = self.shard(id).lock() {
            shard.remove(t, id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|s| s.len).unwrap_or(0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_domain::Timestamp;

    fn user(id: &str, name: &str) -> Arc<User> {
        let mut u = User::new_database(
            UserId::from_trusted(id),
            roster_domain::ConnectionId::from_trusted("con_x"),
            "Username-Password-Authentication",
            roster_domain::Email::parse("a@example.com").expect("email"),
            String::new(),
            Timestamp::from_millis(1),
        );
        u.name = Some(name.into());
        Arc::new(u)
    }

    #[test]
    fn a_copy_is_served_until_forgotten_or_a_pool_commit() {
        let c = UserCache::new(100).expect("cache");
        let (t, id) = (TenantId::from_trusted("ten_a"), UserId::from_trusted("auth0|1"));
        assert!(c.get(&t, &id, 0).is_none());
        c.put(&t, &user("auth0|1", "Ann"), 0, 5, || 5);
        assert_eq!(c.get(&t, &id, 0).and_then(|u| u.name.clone()).as_deref(), Some("Ann"));
        assert!(c.get(&TenantId::from_trusted("ten_b"), &id, 0).is_none(), "another tenant's user of the same id");
        assert!(c.get(&t, &id, 1).is_none(), "a commit of the write pool since the read");
        c.forget(&t, &id);
        assert!(c.get(&t, &id, 0).is_none(), "forgotten");
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_read_overtaken_by_a_commit_is_not_kept() {
        let c = UserCache::new(100).expect("cache");
        let (t, id) = (TenantId::from_trusted("ten_a"), UserId::from_trusted("auth0|1"));
        c.put(&t, &user("auth0|1", "old"), 0, 5, || 6);
        assert!(c.get(&t, &id, 0).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let c = UserCache::new(32).expect("cache");
        let t = TenantId::from_trusted("ten_a");
        for i in 0..1000 {
            c.put(&t, &user(&format!("auth0|{i}"), "x"), 0, 0, || 0);
        }
        assert!(c.len() <= 32, "{} copies", c.len());
        assert!(c.len() > 0);
        assert!(UserCache::new(0).is_none(), "0 turns the cache off");
    }
}
