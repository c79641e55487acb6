//! Cluster mode: several nodes sharing one Redis (`[cluster] redis_url`).
//!
//! - [`registry`]: each node announces itself (region, public URL, state,
//!   calls, shards) under a key that expires unless its heartbeat renews it.
//! - [`limits`]: call rates and concurrency counted across the cluster,
//!   each decided by one atomic script; concurrency slots are [`Lease`]s
//!   their node renews, so a dead node's slots free themselves.
//! - [`leases`]: the node's own record of the leases it holds.
//! - [`placement`]: which node takes a new call (the less loaded of two
//!   random choices in the region), and [`handoff`]: how a node hands it
//!   over, signed with the cluster secret.
//! - [`calls`]: the calls each node carries, so that any node finds a
//!   call's node (to forward its hang-up and events there) and a survivor
//!   writes the records of a lost node's calls, exactly once.
//! - [`keys`]: every Redis key, with visitors' addresses keyed by HMAC.
//!
//! **Redis down.** Calls in progress never depend on Redis. When a command
//! fails or times out the node marks Redis down (`callgate_cluster_redis_up`
//! 0, `/readyz`'s body says `degraded`) and admits new calls on its own
//! limits without asking Redis at all, so no call waits on a dead server.
//! The heartbeat keeps trying; the first one that succeeds rewrites the
//! node's entry and every lease it holds (those of calls admitted meanwhile
//! included), and the node is back on cluster limits: it heals with no
//! operator action.
//!
//! Without `[cluster]` none of this exists and a node runs alone.

pub mod calls;
pub mod handoff;
pub mod keys;
pub mod leases;
pub mod limits;
pub mod placement;
pub mod registry;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, IntGauge};
use redis::aio::MultiplexedConnection;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use self::calls::LostCall;
use self::calls::{CallChange, CallTable};
pub use self::keys::SlotScope;
pub use self::leases::Lease;
use self::leases::{LeaseEntry, LeaseTable};
pub use self::limits::{Rate, RateVerdict, SlotClaim};
use self::limits::{Scripts, full_claim};
pub use self::registry::{NodeEntry, NodeState};
use crate::privacy::Secret;

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one command may take before Redis counts as down. A call's
/// admission waits at most this (twice: rates, then slots).
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Leases renewed per script call, so one call stays short.
const RENEW_BATCH: usize = 256;
/// Calls written back per command when the node's hash is rewritten.
const WRITE_BACK_BATCH: usize = 256;
/// Lost nodes taken per heartbeat at most.
const REAPS_PER_HEARTBEAT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.redis_url: {0}")]
    Url(String),
    #[error("cluster.redis_ca_file: {0}")]
    Ca(String),
    #[error("Redis is unreachable")]
    Down,
    #[error("Redis: {0}")]
    Redis(String),
}

/// What the cluster needs of its node, read at each heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLoad {
    pub draining: bool,
    pub calls: u32,
    /// The process's CPU since the last heartbeat, % of one core.
    pub cpu_percent: u32,
}

/// Reads the node's load; built where the call service and readiness are.
pub type LoadProbe = Arc<dyn Fn() -> LocalLoad + Send + Sync>;

/// The settings of `[cluster]`, resolved.
pub struct ClusterSettings {
    pub node_id: String,
    pub region: String,
    pub public_url: String,
    pub internal_url: String,
    pub redis_url: String,
    pub redis_password: Option<Secret>,
    /// With `rediss://`: the PEM of the CA to trust, instead of the
    /// system's roots.
    pub redis_ca: Option<Vec<u8>>,
    /// Shared by every node: keys visitors' addresses.
    pub secret: Secret,
    pub heartbeat: Duration,
    /// How long an entry or a lease lives unless renewed.
    pub lease: Duration,
    pub shards: u32,
}

/// What the cluster counts.
#[derive(Clone)]
pub struct ClusterMetrics {
    pub redis_up: IntGauge,
    pub nodes: IntGauge,
    /// `callgate_cluster_handoffs_total{outcome}`: `handed_over`, or
    /// `failed` (the call was placed here instead).
    pub handoffs: IntCounterVec,
    /// `callgate_cluster_lost_calls_total`: lost nodes' calls this node
    /// finalised.
    pub lost_calls: IntCounter,
}

/// A node's handle on the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    region: String,
    public_url: String,
    internal_url: String,
    shards: u32,
    heartbeat: Duration,
    lease: Duration,
    client: redis::Client,
    /// The connection while Redis is up; `None` while it is down.
    connection: Mutex<Option<MultiplexedConnection>>,
    up: AtomicBool,
    leases: Arc<LeaseTable>,
    addresses: keys::AddressKeys,
    secret: Secret,
    /// The fresh entries at the last heartbeat.
    registry: Mutex<Vec<NodeEntry>>,
    /// Calls this node handed to each node since that heartbeat.
    placed_since: Mutex<HashMap<String, u32>>,
    scripts: Scripts,
    heartbeat_script: redis::Script,
    load: LoadProbe,
    metrics: ClusterMetrics,
    /// Asks for a heartbeat now (the node's state changed).
    nudge: Notify,
    /// Tells this node's runs apart (lease members, calls' fields).
    run: u64,
    calls: CallTable,
    reap_script: redis::Script,
    take_own_script: redis::Script,
    /// Since when Redis has answered without a break.
    up_since: Mutex<Option<Instant>>,
    /// Calls of lost nodes, for this node to finalise.
    lost_calls: mpsc::UnboundedSender<LostCall>,
    lost_calls_rx: Mutex<Option<mpsc::UnboundedReceiver<LostCall>>>,
}

impl Cluster {
    /// The node's handle; it connects in [`Cluster::run`], so a node whose
    /// Redis is down at start starts all the same, degraded.
    pub fn new(
        settings: ClusterSettings,
        load: LoadProbe,
        metrics: ClusterMetrics,
    ) -> Result<Self, ClusterError> {
        let info = redis::IntoConnectionInfo::into_connection_info(settings.redis_url.as_str())
            .map_err(|e| ClusterError::Url(e.to_string()))?;
        let info = match &settings.redis_password {
            Some(password) => {
                let redis = info
                    .redis_settings()
                    .clone()
                    .set_password(password.expose());
                info.set_redis_settings(redis)
            }
            None => info,
        };
        let client = match settings.redis_ca {
            Some(root_cert) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(info, certificates)
                    .map_err(|e| ClusterError::Ca(e.to_string()))?
            }
            None => redis::Client::open(info).map_err(|e| ClusterError::Url(e.to_string()))?,
        };
        let run = rand::random::<u64>();
        metrics.redis_up.set(0);
        let (lost_calls, lost_calls_rx) = mpsc::unbounded_channel();
        Ok(Self {
            inner: Arc::new(Inner {
                leases: LeaseTable::new(&settings.node_id, run),
                node_id: settings.node_id,
                region: settings.region,
                public_url: settings.public_url,
                internal_url: settings.internal_url,
                shards: settings.shards,
                heartbeat: settings.heartbeat,
                lease: settings.lease,
                client,
                connection: Mutex::new(None),
                up: AtomicBool::new(false),
                addresses: keys::AddressKeys::new(settings.secret.expose().as_bytes()),
                secret: settings.secret,
                registry: Mutex::new(Vec::new()),
                placed_since: Mutex::new(HashMap::new()),
                scripts: Scripts::new(),
                heartbeat_script: registry::heartbeat_script(),
                load,
                metrics,
                nudge: Notify::new(),
                run,
                calls: CallTable::default(),
                reap_script: calls::reap_script(),
                take_own_script: calls::take_own_script(),
                up_since: Mutex::new(None),
                lost_calls,
                lost_calls_rx: Mutex::new(Some(lost_calls_rx)),
            }),
        })
    }

    /// Whether Redis answered the last time it was asked.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Announce the node's state now rather than at the next heartbeat.
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Leases this node holds (calls admitted in cluster mode).
    pub fn leases_held(&self) -> usize {
        self.inner.leases.len()
    }

    /// Announces a call this node carries, or its new state: `record` is
    /// the call's record as it would read if the node died now (JSON).
    pub fn carrying(&self, call_id: &str, record: &str) {
        let value = calls::field_value(self.inner.run, record);
        self.inner.calls.put(call_id, value);
    }

    /// The call ended here (its record is in the node's hands).
    pub fn ended(&self, call_id: &str) {
        self.inner.calls.remove(call_id);
    }

    /// The calls of lost nodes this node is to finalise; `None` after the
    /// first take.
    pub fn take_lost_calls(&self) -> Option<mpsc::UnboundedReceiver<LostCall>> {
        lock(&self.inner.lost_calls_rx).take()
    }

    /// The other node that carries `call_id`, if any does; `None` while
    /// Redis is down.
    pub async fn owner_of_call(&self, call_id: &str) -> Option<NodeEntry> {
        let mut connection = self.connection()?;
        let others: Vec<NodeEntry> = lock(&self.inner.registry)
            .iter()
            .filter(|node| node.id != self.inner.node_id)
            .cloned()
            .collect();
        if others.is_empty() {
            return None;
        }
        let mut pipe = redis::pipe();
        for node in &others {
            pipe.cmd("HEXISTS").arg(keys::calls(&node.id)).arg(call_id);
        }
        match pipe.query_async::<Vec<bool>>(&mut connection).await {
            Ok(found) => others
                .into_iter()
                .zip(found)
                .find_map(|(node, holds)| holds.then_some(node)),
            Err(error) => {
                self.lost(&error);
                None
            }
        }
    }

    /// Checks and spends one call's rates cluster-wide: `client`'s and the
    /// widget's. `None` when Redis is down: the node's own limits decide.
    pub async fn check_rates(
        &self,
        client: IpAddr,
        widget_id: &str,
        client_rate: Rate,
        widget_rate: Rate,
    ) -> Option<RateVerdict> {
        let mut connection = self.connection()?;
        let mut invocation = self.inner.scripts.rate.prepare_invoke();
        invocation
            .key(self.inner.addresses.client_rate(client))
            .key(keys::widget_rate(widget_id))
            .arg(client_rate.interval_us)
            .arg(client_rate.tolerance_us)
            .arg(widget_rate.interval_us)
            .arg(widget_rate.tolerance_us);
        match invocation.invoke_async(&mut connection).await {
            Ok(reply) => Some(RateVerdict::from_reply(reply)),
            Err(error) => {
                self.lost(&error);
                None
            }
        }
    }

    /// Takes one slot of each claim, cluster-wide, all or none. `Ok` holds
    /// the lease; `Err` names the claim whose slots are all taken. While
    /// Redis is down the lease is taken unchecked (the node's own limits
    /// decide) and written to Redis when it is back.
    pub async fn take_slots(&self, claims: &[SlotClaim]) -> Result<Lease, SlotClaim> {
        let keys = claims.iter().map(|claim| claim.key.clone()).collect();
        let lease = self.inner.leases.lease(keys);
        let Some(mut connection) = self.connection() else {
            return Ok(lease);
        };
        let mut invocation = self.inner.scripts.acquire.prepare_invoke();
        for claim in claims {
            invocation.key(&claim.key);
        }
        invocation.arg(&lease.entry().member).arg(self.lease_ms());
        for claim in claims {
            invocation.arg(claim.limit);
        }
        match invocation.invoke_async::<i64>(&mut connection).await {
            Ok(reply) => match full_claim(claims, reply) {
                None => Ok(lease),
                Some(full) => Err(full.clone()),
            },
            Err(error) => {
                self.lost(&error);
                Ok(lease)
            }
        }
    }

    /// Counts one handoff.
    pub fn count_handoff(&self, outcome: handoff::HandoffOutcome) {
        let counter = self
            .inner
            .metrics
            .handoffs
            .with_label_values(&[outcome.as_str()]);
        counter.inc();
    }

    /// The node a new call should go to, when it is not this one (see
    /// [`placement`]); counted against that node until the next heartbeat.
    /// `None` while Redis is down: the node keeps its calls. Nodes behind
    /// one public address are chosen alike: the call's hang-up and events
    /// socket reach its node through whichever node receives them.
    pub fn owner_for_new_call(&self) -> Option<NodeEntry> {
        if !self.is_up() {
            return None;
        }
        let registry = lock(&self.inner.registry).clone();
        let mut placed = lock(&self.inner.placed_since);
        let mut rng = rand::rng();
        let draw = |n: usize| rand::RngExt::random_range(&mut rng, 0..n);
        let me = &self.inner.node_id;
        let owner = placement::choose(me, &self.inner.region, &registry, &placed, draw)?;
        *placed.entry(owner.id.clone()).or_default() += 1;
        (owner.id != *me).then(|| owner.clone())
    }

    /// The tag that hands `call` to another node at `time_secs`.
    pub fn sign_handoff(&self, time_secs: u64, call: &handoff::Handoff<'_>) -> String {
        handoff::sign(self.inner.secret.expose().as_bytes(), time_secs, call)
    }

    /// Checks a handoff from another node.
    pub fn verify_handoff(
        &self,
        now_secs: u64,
        time_secs: u64,
        call: &handoff::Handoff<'_>,
        tag: &str,
    ) -> Result<(), handoff::HandoffRefused> {
        let secret = self.inner.secret.expose().as_bytes();
        handoff::verify(secret, now_secs, time_secs, call, tag)
    }

    /// The fresh entries of the registry, this node's included.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, ClusterError> {
        let mut connection = self.connection().ok_or(ClusterError::Down)?;
        let found = read_nodes(&mut connection).await;
        found.map_err(|error| {
            self.lost(&error);
            ClusterError::Redis(kind_of(&error))
        })
    }

    /// Keeps the node's entry and leases alive and sends releases, until
    /// `stop`; then releases what is left and takes the node out of the
    /// registry (a clean leave, never mistaken for a lost node).
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.inner.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => self.heartbeat().await,
                () = self.inner.nudge.notified() => self.heartbeat().await,
                () = self.inner.leases.released_ready.notified() => self.send_releases().await,
                () = self.inner.calls.changed.notified() => self.send_call_changes().await,
            }
        }
        self.send_releases().await;
        self.send_call_changes().await;
        self.leave().await;
    }

    /// One heartbeat: (re)connect if need be, write the entry, renew every
    /// lease, send releases, count the fresh nodes.
    async fn heartbeat(&self) {
        let Some(mut connection) = self.connect().await else {
            return;
        };
        if !self.is_up() {
            if let Err(error) = self.write_back_calls(&mut connection).await {
                return self.lost(&error);
            }
        }
        match self.beat(&mut connection).await {
            Ok(fresh) => {
                self.inner.metrics.nodes.set(fresh);
                if !self.inner.up.swap(true, Ordering::AcqRel) {
                    *lock(&self.inner.up_since) = Some(Instant::now());
                    self.inner.metrics.redis_up.set(1);
                    tracing::info!(
                        leases = self.inner.leases.len(),
                        "cluster: Redis reachable, node announced, its leases and calls written"
                    );
                }
            }
            Err(error) => return self.lost(&error),
        }
        if self.may_reap() {
            if let Err(error) = self.reap(&mut connection).await {
                self.lost(&error);
            }
        }
    }

    /// Rewrites the node's hash of calls from its table, after taking what
    /// an earlier run of the node left there (those calls are lost).
    async fn write_back_calls(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let own = keys::calls(&self.inner.node_id);
        let mut invocation = self.inner.take_own_script.prepare_invoke();
        invocation
            .key(keys::nodes())
            .key(&own)
            .arg(&self.inner.node_id);
        let reply: Vec<String> = invocation.invoke_async(connection).await?;
        let left = calls::read_own(&self.inner.node_id, self.inner.run, &reply);
        if !left.is_empty() {
            tracing::warn!(
                calls = left.len(),
                "cluster: an earlier run of this node left calls unfinished; finalising them as lost"
            );
        }
        self.finalise(left);
        // What the table holds now stands: changes queued before are in it.
        self.inner.calls.take_changes();
        for batch in self.inner.calls.live().chunks(WRITE_BACK_BATCH) {
            redis::cmd("HSET")
                .arg(&own)
                .arg(batch)
                .query_async::<()>(connection)
                .await?;
        }
        Ok(())
    }

    /// Hands lost calls to this node's finaliser.
    fn finalise(&self, lost: Vec<LostCall>) {
        let count = u64::try_from(lost.len()).unwrap_or(u64::MAX);
        self.inner.metrics.lost_calls.inc_by(count);
        for call in lost {
            let _ = self.inner.lost_calls.send(call);
        }
    }

    /// Whether this node may take lost nodes' calls: only once Redis has
    /// answered it for a lease and a heartbeat without a break, so that
    /// after Redis was away every live node has had its turn to announce
    /// itself again before any is taken for lost.
    fn may_reap(&self) -> bool {
        let settled = self.inner.lease + self.inner.heartbeat;
        lock(&self.inner.up_since).is_some_and(|since| since.elapsed() >= settled)
    }

    /// Takes the calls of nodes whose heartbeat is older than a lease.
    async fn reap(&self, connection: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        for _ in 0..REAPS_PER_HEARTBEAT {
            let mut invocation = self.inner.reap_script.prepare_invoke();
            invocation
                .key(keys::nodes())
                .arg(self.lease_ms())
                .arg(keys::calls_prefix());
            let reply: Vec<String> = invocation.invoke_async(connection).await?;
            let Some(lost) = calls::read_reaped(&reply) else {
                return Ok(());
            };
            tracing::warn!(
                node = %reply[0],
                calls = lost.len(),
                "cluster: a node stopped renewing its heartbeat; this node finalises its calls"
            );
            self.finalise(lost);
        }
        Ok(())
    }

    /// Writes the calls that started or ended since the last time. While
    /// Redis is down they are dropped: the table is written back whole
    /// when it returns.
    async fn send_call_changes(&self) {
        let changes = self.inner.calls.take_changes();
        if changes.is_empty() {
            return;
        }
        let Some(mut connection) = self.connection() else {
            return;
        };
        let own = keys::calls(&self.inner.node_id);
        let mut pipe = redis::pipe();
        for change in &changes {
            match change {
                CallChange::Put { call_id, value } => {
                    pipe.cmd("HSET").arg(&own).arg(call_id).arg(value)
                }
                CallChange::Remove { call_id } => pipe.cmd("HDEL").arg(&own).arg(call_id),
            }
            .ignore();
        }
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            self.lost(&error);
        }
    }

    async fn beat(&self, connection: &mut MultiplexedConnection) -> redis::RedisResult<i64> {
        let load = (self.inner.load)();
        let entry = NodeEntry {
            id: self.inner.node_id.clone(),
            region: self.inner.region.clone(),
            public_url: self.inner.public_url.clone(),
            internal_url: self.inner.internal_url.clone(),
            state: match load.draining {
                true => NodeState::Draining,
                false => NodeState::Serving,
            },
            calls: load.calls,
            shards: self.inner.shards,
            cpu_percent: load.cpu_percent,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let json = serde_json::to_string(&entry).unwrap_or_default();
        let mut invocation = self.inner.heartbeat_script.prepare_invoke();
        invocation
            .key(keys::nodes())
            .key(keys::node(&self.inner.node_id))
            .arg(json)
            .arg(self.lease_ms())
            .arg(&self.inner.node_id);
        invocation.invoke_async::<i64>(connection).await?;
        self.renew(connection).await?;
        release(connection, self.inner.leases.take_released()).await?;
        let fresh = read_nodes(connection).await?;
        let count = i64::try_from(fresh.len()).unwrap_or(i64::MAX);
        *lock(&self.inner.registry) = fresh;
        lock(&self.inner.placed_since).clear();
        Ok(count)
    }

    async fn renew(&self, connection: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let live = self.inner.leases.live();
        let pairs: Vec<(&str, &str)> = live
            .iter()
            .flat_map(|lease| {
                lease
                    .keys
                    .iter()
                    .map(|key| (key.as_str(), lease.member.as_str()))
            })
            .collect();
        for batch in pairs.chunks(RENEW_BATCH) {
            let mut invocation = self.inner.scripts.renew.prepare_invoke();
            invocation.arg(self.lease_ms());
            for (key, member) in batch {
                invocation.key(*key).arg(*member);
            }
            invocation.invoke_async::<i64>(connection).await?;
        }
        Ok(())
    }

    async fn send_releases(&self) {
        let released = self.inner.leases.take_released();
        if released.is_empty() {
            return;
        }
        // Redis down: the leases expire on their own, never renewed.
        let Some(mut connection) = self.connection() else {
            return;
        };
        if let Err(error) = release(&mut connection, released).await {
            self.lost(&error);
        }
    }

    async fn leave(&self) {
        let Some(mut connection) = self.connection() else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(keys::node(&self.inner.node_id))
            .ignore();
        pipe.cmd("ZREM")
            .arg(keys::nodes())
            .arg(&self.inner.node_id)
            .ignore();
        pipe.cmd("DEL")
            .arg(keys::calls(&self.inner.node_id))
            .ignore();
        match pipe.query_async::<()>(&mut connection).await {
            Ok(()) => tracing::info!("cluster: node left the registry"),
            Err(error) => self.lost(&error),
        }
    }

    /// The connection, while Redis is up.
    fn connection(&self) -> Option<MultiplexedConnection> {
        if !self.is_up() {
            return None;
        }
        self.connection_slot().clone()
    }

    /// The connection, made anew if there is none.
    async fn connect(&self) -> Option<MultiplexedConnection> {
        if let Some(connection) = self.connection_slot().clone() {
            return Some(connection);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connecting = self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(connection)) => {
                *self.connection_slot() = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(error)) => {
                self.lost(&error);
                None
            }
            Err(_) => {
                self.mark_down("connecting timed out");
                None
            }
        }
    }

    /// Redis failed: new calls go on local limits until a heartbeat gets
    /// through again.
    fn lost(&self, error: &redis::RedisError) {
        self.mark_down(&kind_of(error));
    }

    fn mark_down(&self, why: &str) {
        *self.connection_slot() = None;
        *lock(&self.inner.up_since) = None;
        if self.inner.up.swap(false, Ordering::AcqRel) {
            self.inner.metrics.redis_up.set(0);
            tracing::warn!(
                error = why,
                "cluster: Redis unreachable; new calls are admitted on this node's own limits until it is back"
            );
        }
    }

    fn connection_slot(&self) -> MutexGuard<'_, Option<MultiplexedConnection>> {
        lock(&self.inner.connection)
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.inner.lease.as_millis()).unwrap_or(u64::MAX)
    }
}

/// What went wrong, by its kind only: an I/O error's text may name the
/// server's address, which stays out of logs and answers.
fn kind_of(error: &redis::RedisError) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connection_refusal() {
        "connection refused".to_owned()
    } else if error.is_connection_dropped() {
        "connection dropped".to_owned()
    } else {
        format!("{:?}", error.kind())
    }
}

/// Each lock guards one value replaced whole, so a poisoned one is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes released leases from their slots.
async fn release(
    connection: &mut MultiplexedConnection,
    released: Vec<LeaseEntry>,
) -> redis::RedisResult<()> {
    if released.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for lease in &released {
        for key in &lease.keys {
            pipe.cmd("ZREM").arg(key).arg(&lease.member).ignore();
        }
    }
    pipe.query_async::<()>(connection).await
}

/// Every node in the registry whose entry has not expired.
async fn read_nodes(connection: &mut MultiplexedConnection) -> redis::RedisResult<Vec<NodeEntry>> {
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::nodes())
        .arg(0)
        .arg(-1)
        .query_async(connection)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let entry_keys: Vec<String> = ids.iter().map(|id| keys::node(id)).collect();
    let entries: Vec<Option<String>> = redis::cmd("MGET")
        .arg(entry_keys)
        .query_async(connection)
        .await?;
    let fresh = entries
        .iter()
        .flatten()
        .filter_map(|json| NodeEntry::parse(json));
    Ok(fresh.collect())
}
