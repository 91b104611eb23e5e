//! Listeners and the server lifecycle: start, serve, stop gracefully.

mod connection;
pub mod metrics_http;
mod metrics_scrape;
mod sasl;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use crate::auth::{Principal, Security};
use crate::broker::{housekeeping, Broker};
use crate::config::{ListenerSpec, ServerConfig};
use crate::handlers::{ListenerInfo, RequestContext};
use crate::limits;
use crate::metrics::connections::Refusal;
use crate::shutdown::ShutdownSignal;
use crate::storage::{Endpoint, Member};

/// A listener as actually bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Default)]
struct StopState {
    stopped: bool,
}

/// A started server. Dropping it stops it.
pub struct RunningServer {
    runtime: Mutex<Option<Runtime>>,
    shutdown_tx: watch::Sender<bool>,
    done: Arc<(Mutex<StopState>, Condvar)>,
    listeners: Vec<BoundListener>,
    serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
    broker: Arc<Broker>,
    security: Arc<Security>,
    /// The brokers of the `tenants` option (None when it is off).
    tenants: Option<Arc<crate::tenants::Tenants>>,
    /// What the metrics listener serves (`metrics/http.rs`), and where it listens.
    exposed: Arc<metrics_http::Exposed>,
    metrics_address: Option<SocketAddr>,
    /// Where the schema registry listens (None when `schema_registry_listener` is not set).
    registry_address: Option<SocketAddr>,
}

/// Connections the kernel queues per listener before kop accepts them.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds (so the port is taken, and known for port 0) without listening: until storage is
/// open, a connection attempt is refused, so a port check never reports a server that cannot
/// answer yet. `listen` follows once the broker is ready.
/// A new connection's id (unique in this process).
fn next_connection_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn bind(spec: &ListenerSpec) -> io::Result<TcpSocket> {
    let addrs: Vec<SocketAddr> = (spec.host.as_str(), spec.port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As std's TcpListener::bind: a restarted kop rebinds despite TIME_WAIT connections.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(io::Error::new(
        last.kind(),
        format!(
            "cannot listen on {}://{}:{}: {last}",
            spec.name, spec.host, spec.port
        ),
    ))
}

/// What Metadata advertises for a listener: the configured advertised listener of the same
/// name, else the bound address (a wildcard host is advertised as 127.0.0.1).
fn advertised(config: &ServerConfig, bound: &BoundListener) -> ListenerInfo {
    let configured = config
        .advertised_listeners
        .iter()
        .filter_map(|a| ListenerSpec::parse(a).ok())
        .find(|a| a.name == bound.name);
    let (host, port) = match configured {
        Some(a) => (a.host, if a.port == 0 { bound.port } else { a.port }),
        None => (bound.host.clone(), bound.port),
    };
    let host = if host == "0.0.0.0" || host == "::" || host.is_empty() {
        "127.0.0.1".to_string()
    } else {
        host
    };
    ListenerInfo {
        name: bound.name.clone(),
        advertised_host: host,
        advertised_port: i32::from(port),
    }
}

impl RunningServer {
    /// Opens storage (recovering it), binds every listener and starts serving.
    pub fn start(config: ServerConfig) -> io::Result<RunningServer> {
        RunningServer::start_with_hooks(config, None)
    }

    /// `start`, with Python authentication/authorization hooks (see `auth::authorizer::Hooks`).
    pub fn start_with_hooks(
        config: ServerConfig,
        hooks: Option<Arc<dyn crate::auth::authorizer::Hooks>>,
    ) -> io::Result<RunningServer> {
        RunningServer::start_embedded(config, hooks, None)
    }

    /// `start_with_hooks`, plus the backend of `pulsar://` storage (`storage::RemoteBackend`).
    pub fn start_embedded(
        config: ServerConfig,
        hooks: Option<Arc<dyn crate::auth::authorizer::Hooks>>,
        remote_storage: Option<Arc<dyn crate::storage::RemoteBackend>>,
    ) -> io::Result<RunningServer> {
        RunningServer::start_with_tenants(config, hooks, remote_storage, Vec::new())
    }

    /// `start_embedded`, plus the backend of each namespace of the `tenants` option
    /// (`TENANT/NS` → backend; the instance's own namespace uses `remote_storage`).
    pub fn start_with_tenants(
        config: ServerConfig,
        hooks: Option<Arc<dyn crate::auth::authorizer::Hooks>>,
        remote_storage: Option<Arc<dyn crate::storage::RemoteBackend>>,
        tenant_storage: Vec<(String, Arc<dyn crate::storage::RemoteBackend>)>,
    ) -> io::Result<RunningServer> {
        config
            .validate()
            .and_then(|()| crate::auth::check_config(&config))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let threads = if config.io_threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.io_threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("kop-io")
            .enable_all()
            .build()?;
        let specs = config.listener_specs();
        let sockets = specs.iter().map(bind).collect::<io::Result<Vec<_>>>()?;
        // The metrics listener answers from the start: /health at once, /ready once the
        // storage is open and the Kafka listeners accept connections.
        let exposed = Arc::new(metrics_http::Exposed::default());
        let mut metrics_address = None;
        if let Some(spec) = &config.metrics_listener {
            let std_listener = metrics_http::bind(spec, "metrics")?;
            metrics_address = Some(std_listener.local_addr()?);
            let _guard = runtime.enter();
            let listener = TcpListener::from_std(std_listener)?;
            runtime.spawn(metrics_http::serve(listener, exposed.clone()));
            tracing::info!(address = %spec, port = metrics_address.map_or(0, |a| a.port()), "metrics listener: /metrics, /health, /ready");
        }
        // Bound now (a taken port fails the start), served once storage is open.
        let registry_listener = match &config.schema_registry_listener {
            Some(spec) => Some(metrics_http::bind(spec, "the schema registry")?),
            None => None,
        };
        let registry_address = registry_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;
        let mut bound = Vec::new();
        let mut infos = Vec::new();
        for (spec, l) in specs.iter().zip(&sockets) {
            let b = BoundListener {
                name: spec.name.clone(),
                host: spec.host.clone(),
                port: l.local_addr()?.port(),
            };
            infos.push(Arc::new(advertised(&config, &b)));
            bound.push(b);
        }
        let me = Member {
            node_id: config.node_id,
            endpoints: infos
                .iter()
                .map(|i| Endpoint {
                    listener: i.name.clone(),
                    host: i.advertised_host.clone(),
                    port: i.advertised_port,
                })
                .collect(),
        };
        let started = std::time::Instant::now();
        let broker = Arc::new(Broker::open(config.clone(), remote_storage, me.clone())?);
        tracing::info!(
            topics = broker.topics().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            cluster_id = %broker.cluster_id,
            "storage opened"
        );
        let security = Arc::new(
            Security::new(&config, Some(broker.metadata()), hooks.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        );
        let tenants = crate::tenants::Tenants::open(
            &config,
            (&broker, &security),
            hooks,
            tenant_storage,
            &me,
        )?;
        exposed.opened(broker.clone(), security.clone(), tenants.clone());
        if let Some(std_listener) = registry_listener {
            let served = crate::registry::served(
                &config,
                broker.metadata().documents(),
                security.clone(),
                tenants.clone(),
            );
            let _guard = runtime.enter();
            let listener = TcpListener::from_std(std_listener)?;
            runtime.spawn(crate::registry::http::serve(listener, Arc::new(served)));
            tracing::info!(
                port = registry_address.map_or(0, |a| a.port()),
                "schema registry listening"
            );
        }
        // Storage is open: only now do the ports accept connections.
        let mut listeners = Vec::new();
        for (socket, info) in sockets.into_iter().zip(infos) {
            let _guard = runtime.enter();
            listeners.push((socket.listen(LISTEN_BACKLOG)?, info));
        }
        let (shutdown_tx, shutdown) = ShutdownSignal::new();
        let done = Arc::new((Mutex::new(StopState::default()), Condvar::new()));
        let serving = runtime.spawn(serve_all(
            broker.clone(),
            security.clone(),
            tenants.clone(),
            listeners,
            shutdown,
        ));
        for l in &bound {
            tracing::info!(listener = %l.name, host = %l.host, port = l.port, "listening");
        }
        exposed.listening();
        Ok(RunningServer {
            runtime: Mutex::new(Some(runtime)),
            shutdown_tx,
            done,
            listeners: bound,
            serving: Mutex::new(Some(serving)),
            broker,
            security,
            tenants,
            exposed,
            metrics_address,
            registry_address,
        })
    }

    /// Every metric, in Prometheus' text format (what the metrics listener serves).
    pub fn metrics_text(&self) -> String {
        metrics_scrape::render(&self.broker, Some(&self.security), self.tenants.as_deref())
    }

    /// Where the metrics listener listens (None when `metrics_listener` is not set).
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Where the schema registry listens (None when `schema_registry_listener` is not set).
    pub fn registry_address(&self) -> Option<SocketAddr> {
        self.registry_address
    }

    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    pub fn security(&self) -> &Arc<Security> {
        &self.security
    }

    /// Every `Security` of the server, each once: the instance's, then each other tenant's
    /// (`tenants`: each has its own authorizer decision cache and hook counters).
    pub fn securities(&self) -> Vec<&Arc<Security>> {
        let mut all = vec![&self.security];
        for tenant in self.tenants.iter().flat_map(|ts| ts.all()) {
            if !Arc::ptr_eq(&tenant.security, &self.security) {
                all.push(&tenant.security);
            }
        }
        all
    }

    /// The brokers of the `tenants` option (None when it is off).
    pub fn tenants(&self) -> Option<&Arc<crate::tenants::Tenants>> {
        self.tenants.as_ref()
    }

    pub fn is_running(&self) -> bool {
        !self.done.0.lock().stopped
    }

    /// Stops accepting, lets in-flight requests finish (up to `timeout`), flushes and closes.
    /// Safe to call more than once and from any thread.
    pub fn stop(&self, timeout: Duration) {
        let Some(runtime) = self.runtime.lock().take() else {
            return;
        };
        tracing::info!("stopping");
        self.exposed.stopping();
        self.shutdown_tx.send_replace(true);
        if let Some(serving) = self.serving.lock().take() {
            let finished = runtime.block_on(async { tokio::time::timeout(timeout, serving).await });
            if finished.is_err() {
                tracing::warn!("in-flight requests did not finish within the stop timeout");
            }
        }
        runtime.shutdown_timeout(Duration::from_secs(1));
        self.broker.flush_all();
        for tenant in self.tenants.iter().flat_map(|t| t.all()) {
            tenant.broker.flush_all();
        }
        let (state, cv) = &*self.done;
        state.lock().stopped = true;
        cv.notify_all();
        tracing::info!("stopped");
    }

    /// Blocks until the server has stopped, or the timeout passes. True if stopped.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let (state, cv) = &*self.done;
        let mut s = state.lock();
        match timeout {
            None => {
                while !s.stopped {
                    cv.wait(&mut s);
                }
            }
            Some(t) => {
                let deadline = std::time::Instant::now() + t;
                while !s.stopped {
                    if cv.wait_until(&mut s, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        s.stopped
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Accept loops for every listener plus the periodic fsync and retention tasks; returns once
/// shutdown is signalled and every connection has finished its request in flight.
async fn serve_all(
    broker: Arc<Broker>,
    security: Arc<Security>,
    tenants: Option<Arc<crate::tenants::Tenants>>,
    listeners: Vec<(TcpListener, Arc<ListenerInfo>)>,
    shutdown: ShutdownSignal,
) {
    let limits = Arc::new(limits::ConnectionLimits::new(&broker.config));
    let mut tasks = JoinSet::new();
    for (listener, info) in listeners {
        tasks.spawn(accept_loop(
            broker.clone(),
            security.clone(),
            tenants.clone(),
            listener,
            info,
            limits.clone(),
            shutdown.clone(),
        ));
    }
    spawn_background(&mut tasks, &broker, &security, &shutdown);
    // Each tenant's broker has its own timers, retention and cluster sync.
    for tenant in tenants.iter().flat_map(|t| t.all()) {
        if !Arc::ptr_eq(&tenant.broker, &broker) {
            spawn_background(&mut tasks, &tenant.broker, &tenant.security, &shutdown);
        }
    }
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

/// The periodic tasks of one broker: storage upkeep, group and transaction timers, the log
/// cleaner, and the sync with the other instances sharing its storage.
fn spawn_background(
    tasks: &mut JoinSet<()>,
    broker: &Arc<Broker>,
    security: &Arc<Security>,
    shutdown: &ShutdownSignal,
) {
    tasks.spawn(housekeeping::storage_upkeep(
        broker.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(housekeeping::group_timers(broker.clone(), shutdown.clone()));
    tasks.spawn(housekeeping::transaction_timers(
        broker.clone(),
        shutdown.clone(),
    ));
    // Pulsar logs answer "nothing to clean" (not compacted by kop yet, docs/compaction.md).
    if broker.config.log_cleaner_enable {
        tasks.spawn(housekeeping::log_cleaner(broker.clone(), shutdown.clone()));
    }
    if broker.shares_storage() {
        tasks.spawn(housekeeping::cluster_sync(
            broker.clone(),
            security.clone(),
            shutdown.clone(),
        ));
    }
}

async fn accept_loop(
    broker: Arc<Broker>,
    security: Arc<Security>,
    tenants: Option<Arc<crate::tenants::Tenants>>,
    listener: TcpListener,
    info: Arc<ListenerInfo>,
    limits: Arc<limits::ConnectionLimits>,
    mut shutdown: ShutdownSignal,
) {
    let mut connections = JoinSet::new();
    let protocol = security.protocol(&info.name);
    let counted = broker.metrics.connections.listener(&info.name);
    let tls = protocol
        .is_tls()
        .then(|| security.tls.clone().map(tokio_rustls::TlsAcceptor::from))
        .flatten();
    // As Kafka's inter-broker listener, a listener named for the instances to call each other
    // on is not held to max_connections.
    let exempt = broker.config.inter_instance_listener.as_deref() == Some(info.name.as_str());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over its IP's connection_creation_rate: as Kafka, the connection is held
                    // unread for the throttle time, then closed (the client does not reconnect
                    // at once).
                    if let Some(ms) = broker.quotas.admit_connection(peer.ip(), crate::now_ms() as u64) {
                        crate::warn_bad_input!(limits.bad_input_log, peer, throttle_ms = ms,
                            "closing connection: over the connection_creation_rate quota of its IP");
                        counted.refused(Refusal::CreationRate);
                        let mut stop = shutdown.clone();
                        connections.spawn(async move {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                                _ = stop.wait() => {}
                            }
                            drop(stream);
                        });
                        continue;
                    }
                    // At max_connections the listener waits for a place (as Kafka's acceptor);
                    // the waiting client sees no answer until then.
                    let waiting = (!exempt && limits.connections.at_limit()).then(|| {
                        crate::warn_bad_input!(limits.bad_input_log, peer,
                            limit = limits.connections.max_total,
                            "max_connections reached: waiting for a connection to close");
                        std::time::Instant::now()
                    });
                    let place = tokio::select! {
                        place = limits.connections.wait_for_place(exempt) => place,
                        _ = shutdown.wait() => break,
                    };
                    if let Some(since) = waiting {
                        counted.waited_at_limit(since.elapsed());
                    }
                    let Some(counted_ip) = limits.connections.admit(peer.ip(), place) else {
                        crate::warn_bad_input!(limits.bad_input_log, peer,
                            limit = limits.connections.limit_for(peer.ip()),
                            "closing connection: over max_connections_per_ip");
                        counted.refused(Refusal::PerIp);
                        continue;
                    };
                    // Until it authenticates, a SASL connection holds one of a limited number
                    // of places; without one it is closed at once.
                    let slot = if protocol.is_sasl() {
                        match limits.unauthenticated_slot() {
                            Some(slot) => Some(slot),
                            None => {
                                crate::warn_bad_input!(limits.bad_input_log, peer,
                                    listener = %info.name, limit = limits.max_unauthenticated,
                                    "closing connection: too many unauthenticated connections");
                                counted.refused(Refusal::Unauthenticated);
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let _ = stream.set_nodelay(true);
                    let open = counted.accepted();
                    let ctx = RequestContext {
                        broker: broker.clone(),
                        listener: info.clone(),
                        peer,
                        connection_id: next_connection_id(),
                        shutdown: shutdown.clone(),
                        limits: limits.clone(),
                        security: security.clone(),
                        principal: Principal::anonymous(),
                        mute: Default::default(),
                    };
                    match &tls {
                        None => {
                            let serve = connection::serve(stream, ctx, slot, tenants.clone());
                            connections.spawn(async move { serve.await; drop((open, counted_ip)) });
                        }
                        Some(acceptor) => {
                            let serve = serve_tls(acceptor.clone(), stream, ctx, slot, tenants.clone());
                            connections.spawn(async move { serve.await; drop((open, counted_ip)) });
                        }
                    }
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "connection task failed");
                }
            }
            _ = shutdown.wait() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshake, then the connection; on an SSL listener a verified client certificate sets
/// the principal (through `ssl_principal_mapping_rules`).
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    mut ctx: RequestContext,
    slot: Option<OwnedSemaphorePermit>,
    tenants: Option<Arc<crate::tenants::Tenants>>,
) {
    let peer = ctx.peer;
    let mut shutdown = ctx.shutdown.clone();
    let handshake = tokio::select! {
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
        _ = shutdown.wait() => return,
    };
    let stream = match handshake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            crate::warn_bad_input!(ctx.limits.bad_input_log, peer,
                listener = %ctx.listener.name, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            crate::warn_bad_input!(ctx.limits.bad_input_log, peer,
                listener = %ctx.listener.name, "TLS handshake timed out");
            return;
        }
    };
    if !ctx.security.protocol(&ctx.listener.name).is_sasl() {
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned());
        if let Some(leaf) = leaf {
            match ctx.security.tls_principal.principal(&leaf) {
                Some(p) => {
                    tracing::info!(%peer, principal = %p, listener = %ctx.listener.name, "TLS client authenticated");
                    ctx.principal = p;
                }
                None => {
                    tracing::warn!(%peer, "cannot read the client certificate subject; closing");
                    return;
                }
            }
        }
    }
    connection::serve(stream, ctx, slot, tenants).await;
}
