//! Remote plugin settings and the backoff shared with companions.

use std::{num::NonZeroUsize, path::PathBuf, time::Duration};

use super::RemoteAddress;

/// A plugin served by someone else at an address.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// Where the plugin listens. Required.
    pub address: RemoteAddress,
    /// How long one connection attempt may take. Default 1 s.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive ping interval; `None` (YAML `off`) sends none. Default 5 min: grpc-go
    /// servers answer pings more frequent than that with GOAWAY `too_many_pings`.
    pub keepalive: Option<Duration>,
    /// HTTP/2 connections to the plugin (to each endpoint of a fleet), used least loaded
    /// first; `None` (YAML `auto`, the default): one per worker thread of the host's tokio
    /// runtime, at most 4. At most [`RemoteConfig::MAX_CONNECTIONS`].
    pub connections: Option<NonZeroUsize>,
    /// Delay between reconnect attempts. Default [`BackoffConfig::REMOTE_DEFAULT`] (100 ms, ×2,
    /// 5 s cap, 0.2 jitter).
    pub backoff: BackoffConfig,
    /// TLS to the plugin (`remote.tls`, or an `https://`/`tls://` address); `None`: plaintext.
    pub tls: Option<RemoteTlsConfig>,
    /// Several endpoints (`remote.address` as a list, or `dns:///name:port`): the plugin runs
    /// as a fleet, balanced and with ejection. `None`: one address, one connection. With a
    /// fleet, [`address`](Self::address) is its first address (a list) or the DNS name and
    /// port, which TLS uses as the default server name.
    pub fleet: Option<FleetConfig>,
}

/// A remote plugin served by several endpoints (`docs/scale-out.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Where the endpoints come from.
    pub endpoints: Endpoints,
    /// `remote.resolve-interval`: how often a `dns:///` name is resolved again (also at
    /// once when an endpoint fails). Default 30 s.
    pub resolve_interval: Duration,
    /// When an endpoint is taken out of rotation.
    pub ejection: EjectionConfig,
}

/// The endpoints of a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// `remote.address: [a, b, ...]`: these addresses.
    List(Vec<RemoteAddress>),
    /// `remote.address: dns:///name:port`: every address the name resolves to (a Kubernetes
    /// headless Service returns one per ready pod), at `port`.
    Dns {
        /// The name to resolve.
        host: String,
        /// The port of every endpoint.
        port: u16,
    },
}

impl std::fmt::Display for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoints::List(list) => {
                for (i, a) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
            Endpoints::Dns { host, port } if host.contains(':') => {
                write!(f, "dns:///[{host}]:{port}")
            }
            Endpoints::Dns { host, port } => write!(f, "dns:///{host}:{port}"),
        }
    }
}

/// Outlier ejection in Envoy's manner: `consecutive-failures` failures in a row (failed
/// health checks, failed dials, calls that saw the connection fail) take an endpoint out of
/// rotation for `base-ejection-time × (times ejected)`, at most `max-ejection-time`; never
/// more than `max-ejection-percent` of the fleet at once (but always at least one endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionConfig {
    /// `remote.consecutive-failures`: failures in a row that eject. Default 3.
    pub consecutive_failures: u32,
    /// `remote.base-ejection-time`: the first ejection's length. Default 10 s.
    pub base_time: Duration,
    /// `remote.max-ejection-time`: the longest ejection. Default 5 min.
    pub max_time: Duration,
    /// `remote.max-ejection-percent`: the largest share of the fleet ejected at once, 0 to
    /// 100. Default 50.
    pub max_percent: u8,
}

impl EjectionConfig {
    /// The defaults: 3 failures, 10 s, 5 min, 50 %.
    pub const DEFAULT: Self = Self {
        consecutive_failures: 3,
        base_time: Duration::from_secs(10),
        max_time: Duration::from_secs(300),
        max_percent: 50,
    };
}

impl Default for EjectionConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FleetConfig {
    /// Default of [`resolve_interval`](Self::resolve_interval): 30 s.
    pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

    /// A fleet of `endpoints` with the default settings.
    pub fn new(endpoints: Endpoints) -> Self {
        Self {
            endpoints,
            resolve_interval: Self::DEFAULT_RESOLVE_INTERVAL,
            ejection: EjectionConfig::DEFAULT,
        }
    }
}

/// `remote.tls`: how the host verifies a remote plugin's certificate, and the client
/// certificate it presents (mTLS). The files are read again at each connection attempt, so a
/// rotated certificate or CA is used from the next connection on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteTlsConfig {
    /// The CA certificates (PEM) the plugin's certificate must chain to. Required unless
    /// [`insecure_skip_verify`](Self::insecure_skip_verify): the system's roots are not used.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM) presented for mTLS; set with [`key_file`](Self::key_file).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// The name the plugin's certificate must carry, sent as SNI. Default: the address's host
    /// (`localhost` for a unix socket).
    pub server_name: Option<String>,
    /// Accept any certificate (the handshake is still encrypted, but anyone on the path can
    /// pose as the plugin). Logged as a warning at start. Default `false`.
    pub insecure_skip_verify: bool,
}

impl RemoteConfig {
    /// Default of [`connect_timeout`](Self::connect_timeout): 1 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default of [`keepalive`](Self::keepalive): 5 min.
    pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(300);
    /// The largest [`connections`](Self::connections) accepted: 16.
    pub const MAX_CONNECTIONS: usize = 16;

    /// Settings for a plugin at `address`, everything else default.
    pub fn new(address: RemoteAddress) -> Self {
        Self {
            address,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            keepalive: Some(Self::DEFAULT_KEEPALIVE),
            connections: None,
            backoff: BackoffConfig::REMOTE_DEFAULT,
            tls: None,
            fleet: None,
        }
    }
}

/// Exponential backoff: `initial × factor^(n-1)`, capped at `max`, spread by `±jitter`.
///
/// Validated values satisfy `0 < initial <= max <= MAX_DURATION`, `factor >= 1` and
/// `0 <= jitter < 1`: the rules of `supervisor::Backoff::new` (and the duration cap), so
/// [`to_backoff`](Self::to_backoff) on a loaded or [validated](super::Config::validate) config
/// cannot fail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay. Greater than zero.
    pub initial: Duration,
    /// Growth between consecutive delays. At least 1.
    pub factor: f64,
    /// The cap. At least `initial`.
    pub max: Duration,
    /// Random spread: a delay is multiplied by a factor in `[1 - jitter, 1 + jitter)`. In `[0, 1)`.
    pub jitter: f64,
}

impl BackoffConfig {
    /// The supervisor's backoff schedule for these values, or why they do not make one.
    /// Never an error for a loaded or [validated](super::Config::validate) config.
    pub fn to_backoff(&self) -> Result<supervisor::Backoff, supervisor::BackoffError> {
        supervisor::Backoff::new(self.initial, self.factor, self.max, self.jitter)
    }

    /// Companion restarts: 200 ms, ×2, 30 s cap, 0.2 jitter.
    pub const RESTART_DEFAULT: Self = Self {
        initial: Duration::from_millis(200),
        factor: 2.0,
        max: Duration::from_secs(30),
        jitter: 0.2,
    };
    /// Remote reconnects: 100 ms, ×2, 5 s cap, 0.2 jitter.
    pub const REMOTE_DEFAULT: Self = Self {
        initial: Duration::from_millis(100),
        factor: 2.0,
        max: Duration::from_secs(5),
        jitter: 0.2,
    };
}

impl Default for BackoffConfig {
    /// [`BackoffConfig::RESTART_DEFAULT`].
    fn default() -> Self {
        Self::RESTART_DEFAULT
    }
}
