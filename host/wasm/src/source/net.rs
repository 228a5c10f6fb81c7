//! The WASI context of a source, and the gate on its network.
//!
//! A source gets from WASI: clocks, random, poll; no preopened
//! directories, no environment, no arguments, an empty stdin, stdout and
//! stderr discarded unless its config says `stdio = "log"`, never UDP.
//! TCP only when it has a TCP grant, and then only to what the grants
//! name:
//!
//! - **Name lookup** (`wasi:sockets/ip-name-lookup`) is shadowed: a name
//!   no grant admits fails with `access-denied` before any DNS query, and
//!   the host logs it. A granted name is resolved by wasmtime-wasi as
//!   usual, and remembered (that is how a `*.example.org` grant learns
//!   which subdomains the source uses).
//! - **Creating a TCP socket** (`wasi:sockets/tcp-create-socket`) is
//!   shadowed too: a source without a TCP grant gets `access-denied` and
//!   the host logs it, instead of a silent refusal.
//! - **Every address** the guest binds, listens on or connects to goes
//!   through the socket address check: a connect is allowed only to an
//!   address that a granted name resolves to (resolved here, on the host,
//!   and cached for [`RESOLVE_TTL`]) or that an address grant names, on a
//!   granted port. The only bind allowed is the implicit one of a connect
//!   (unspecified address, port 0); listening and accepting are refused.
//!
//! Each refusal is logged with target `firehose_wasm::source`, the field
//! `source = <name>` and what was refused (`addr` or `name`), at most
//! [`DENIAL_LOG_PER_SEC`] lines a second per source (the rest are
//! counted in the next line). The guest sees an ordinary socket error
//! (`access-denied`: "Permission denied" in Rust's std).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddress, IpAddressFamily, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::TcpSocket;
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use super::budget::LogBudget;
use super::grants::{HostPattern, HttpGrant, TcpGrant};
use super::state::SourceState;
use crate::wasi_ctx::{self, StdioMode};

/// How long a granted name's addresses are trusted before the host
/// resolves it again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(30);

/// How many refusals per second are logged for one source.
pub const DENIAL_LOG_PER_SEC: u32 = 10;

/// How many distinct granted names (matched by a wildcard grant) are
/// remembered per source run.
const MAX_LOOKED_UP: usize = 256;

/// What one source may reach, shared by its store and the address check.
pub(crate) struct NetPolicy {
    source: Arc<str>,
    grants: Vec<TcpGrant>,
    /// URL patterns outgoing `wasi:http` requests may go to.
    http: Vec<HttpGrant>,
    /// TLS settings for granted `https` requests (set when `http` is not
    /// empty).
    http_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// Granted names the guest looked up, for wildcard grants.
    looked_up: Mutex<BTreeSet<String>>,
    /// Host-side resolutions of granted names.
    resolved: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
    denials: Mutex<LogBudget>,
}

impl NetPolicy {
    pub(crate) fn new(
        source: Arc<str>,
        grants: Vec<TcpGrant>,
        http: Vec<HttpGrant>,
        http_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Arc<Self> {
        Arc::new(NetPolicy {
            source,
            grants,
            http,
            http_tls,
            looked_up: Mutex::new(BTreeSet::new()),
            resolved: Mutex::new(HashMap::new()),
            denials: Mutex::new(LogBudget::new(DENIAL_LOG_PER_SEC)),
        })
    }

    /// The TLS settings to send a request to `uri` with, when some HTTP
    /// grant admits it.
    pub(crate) fn admits_http(
        &self,
        uri: &http::Uri,
    ) -> Option<Arc<tokio_rustls::rustls::ClientConfig>> {
        if self.http.iter().any(|grant| grant.admits(uri)) {
            self.http_tls.clone()
        } else {
            None
        }
    }

    fn has_tcp(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Whether some grant admits `name` (on some port).
    fn admits_name(&self, name: &str) -> bool {
        self.grants.iter().any(|g| g.admits_host(name))
    }

    fn remember_lookup(&self, name: &str) {
        let mut names = self.looked_up.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() < MAX_LOOKED_UP {
            names.insert(name.trim_end_matches('.').to_ascii_lowercase());
        }
    }

    /// Logs one refusal, within the per-second budget.
    fn deny(&self, what: &str, target: &str, why: &str) {
        let suppressed = {
            let mut budget = self.denials.lock().unwrap_or_else(|e| e.into_inner());
            match budget.take() {
                Some(suppressed) => suppressed,
                None => return,
            }
        };
        tracing::warn!(
            target: "firehose_wasm::source",
            source = &*self.source,
            addr = target,
            suppressed,
            "{what} {target} refused: {why}"
        );
    }

    /// The socket address check: may the guest use `addr` for `usage`?
    async fn check(self: Arc<Self>, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        match usage {
            // The implicit bind before a connect: the OS picks the local
            // address and port.
            SocketAddrUse::TcpBind if addr.ip().is_unspecified() && addr.port() == 0 => true,
            SocketAddrUse::TcpConnect => {
                if self.connect_admitted(addr).await {
                    tracing::debug!(
                        target: "firehose_wasm::source",
                        source = &*self.source,
                        addr = %addr,
                        "connect admitted by a grant"
                    );
                    true
                } else {
                    self.deny(
                        "connect to",
                        &addr.to_string(),
                        "no tcp grant of this source admits this address and port",
                    );
                    false
                }
            }
            other => {
                self.deny(
                    &format!("{other:?}"),
                    &addr.to_string(),
                    "a source may only connect out",
                );
                false
            }
        }
    }

    async fn connect_admitted(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        let mut names = Vec::new();
        for grant in self.grants.iter().filter(|g| g.port.admits(addr.port())) {
            match &grant.host {
                HostPattern::Ip(granted) => {
                    if granted.to_canonical() == ip {
                        return true;
                    }
                }
                HostPattern::Name(name) => names.push(name.clone()),
                HostPattern::Subdomains(_) => {
                    let looked_up = self.looked_up.lock().unwrap_or_else(|e| e.into_inner());
                    names.extend(looked_up.iter().filter(|n| grant.admits_host(n)).cloned());
                }
            }
        }
        for name in names {
            if self.addresses_of(&name).await.contains(&ip) {
                return true;
            }
        }
        false
    }

    /// The addresses `name` resolves to on the host, cached for
    /// [`RESOLVE_TTL`]; empty when it does not resolve.
    async fn addresses_of(&self, name: &str) -> Vec<IpAddr> {
        let now = Instant::now();
        {
            let cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, ips)) = cache.get(name)
                && now.duration_since(*at) < RESOLVE_TTL
            {
                return ips.clone();
            }
        }
        let ips: Vec<IpAddr> = match tokio::net::lookup_host((name, 0)).await {
            Ok(addrs) => addrs.map(|a| a.ip().to_canonical()).collect(),
            Err(error) => {
                tracing::debug!(
                    target: "firehose_wasm::source",
                    source = &*self.source,
                    name,
                    %error,
                    "granted name does not resolve"
                );
                Vec::new()
            }
        };
        let mut cache = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(name.to_owned(), (now, ips.clone()));
        ips
    }
}

/// Builds the WASI context of one run of a source.
pub(crate) fn source_ctx(name: &Arc<str>, net: &Arc<NetPolicy>, stdio: StdioMode) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    let check_net = net.clone();
    builder
        .allow_udp(false)
        .allow_tcp(net.has_tcp())
        .allow_ip_name_lookup(net.has_tcp())
        .socket_addr_check(move |addr, usage| Box::pin(check_net.clone().check(addr, usage)));
    if stdio == StdioMode::Log {
        wasi_ctx::log_stdio(&mut builder, name);
    }
    builder.build()
}

/// Shadows name lookup and TCP socket creation in `linker` (which must
/// already hold wasmtime-wasi's own) with the gated versions.
pub(crate) fn add_gates(linker: &mut Linker<SourceState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    ip_name_lookup::add_to_linker::<SourceState, Gated>(linker, gated)?;
    tcp_create_socket::add_to_linker::<SourceState, Gated>(linker, gated)?;
    linker.allow_shadowing(false);
    Ok(())
}

fn gated(state: &mut SourceState) -> GatedSockets<'_> {
    let (sockets, net) = state.sockets_and_net();
    GatedSockets { sockets, net }
}

/// wasmtime-wasi's sockets, seen through a source's grants.
pub(crate) struct GatedSockets<'a> {
    sockets: WasiSocketsCtxView<'a>,
    net: &'a NetPolicy,
}

struct Gated;

impl HasData for Gated {
    type Data<'a> = GatedSockets<'a>;
}

impl ip_name_lookup::Host for GatedSockets<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        if !self.net.admits_name(&name) {
            self.net.deny(
                "name lookup of",
                &name,
                "no tcp grant of this source names this host",
            );
            return Err(ErrorCode::AccessDenied.into());
        }
        self.net.remember_lookup(&name);
        ip_name_lookup::Host::resolve_addresses(&mut self.sockets, network, name)
    }
}

impl HostResolveAddressStream for GatedSockets<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        HostResolveAddressStream::subscribe(&mut self.sockets, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.sockets, stream)
    }
}

/// Needed by the two interfaces above (they `use` its types); plain
/// delegation.
impl network::Host for GatedSockets<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets, error)
    }

    fn network_error_code(
        &mut self,
        error: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets, error)
    }
}

impl network::HostNetwork for GatedSockets<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets, network)
    }
}

impl tcp_create_socket::Host for GatedSockets<'_> {
    fn create_tcp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> Result<Resource<TcpSocket>, SocketError> {
        if !self.net.has_tcp() {
            self.net.deny(
                "TCP socket",
                "(any address)",
                "this source has no tcp grant",
            );
            return Err(ErrorCode::AccessDenied.into());
        }
        tcp_create_socket::Host::create_tcp_socket(&mut self.sockets, family)
    }
}
