//! Remote plugin settings and the backoff shared with companions.

use std::{path::PathBuf, time::Duration};

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
    /// Delay between reconnect attempts. Default [`BackoffConfig::REMOTE_DEFAULT`] (100 ms, ×2,
    /// 5 s cap, 0.2 jitter).
    pub backoff: BackoffConfig,
    /// TLS to the plugin (`remote.tls`, or an `https://`/`tls://` address); `None`: plaintext.
    pub tls: Option<RemoteTlsConfig>,
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

    /// Settings for a plugin at `address`, everything else default.
    pub fn new(address: RemoteAddress) -> Self {
        Self {
            address,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            keepalive: Some(Self::DEFAULT_KEEPALIVE),
            backoff: BackoffConfig::REMOTE_DEFAULT,
            tls: None,
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
