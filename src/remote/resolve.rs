//! Where a fleet's endpoints are: a [`Resolve`] gives the current set, and [`diff`] turns
//! the change into endpoints to add and to remove.
//!
//! `dns:///name:port` uses the system resolver (`getaddrinfo`, through tokio's
//! `lookup_host` on its blocking pool), not a DNS client library: it honours
//! `/etc/hosts`, `nsswitch.conf` and the search domains and `ndots` Kubernetes writes into a
//! pod's `resolv.conf`, and adds no dependency. It reports no TTL, so the fleet resolves
//! again every `resolve-interval` and soon after an endpoint fails (a pod replaced by the
//! orchestrator comes back under a new address).

use std::{future::Future, pin::Pin};

use crate::{
    config::{Endpoints, RemoteAddress},
    conn::Dest,
};

/// A resolution's outcome: the endpoints, or why there are none this time.
pub(crate) type Resolved = Result<Vec<Dest>, String>;

/// A resolution under way; it owns what it needs, so the fleet owner can poll it while it
/// handles everything else.
pub(crate) type Resolving = Pin<Box<dyn Future<Output = Resolved> + Send>>;

/// Gives a fleet's endpoints. Tests inject a stub.
pub(crate) trait Resolve: Send + Sync + 'static {
    /// The endpoints now.
    fn resolve(&self) -> Resolving;
}

/// The resolver for configured endpoints.
pub(crate) fn of(endpoints: &Endpoints) -> Box<dyn Resolve> {
    match endpoints {
        Endpoints::List(list) => Box::new(Fixed(list.iter().map(super::dest).collect())),
        Endpoints::Dns { host, port } => Box::new(Dns {
            host: host.clone(),
            port: *port,
        }),
    }
}

/// A fixed list.
pub(crate) struct Fixed(pub(crate) Vec<Dest>);

impl Resolve for Fixed {
    fn resolve(&self) -> Resolving {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// A name resolved by the system resolver.
struct Dns {
    host: String,
    port: u16,
}

impl Resolve for Dns {
    fn resolve(&self) -> Resolving {
        let (host, port) = (self.host.clone(), self.port);
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            let mut dests: Vec<Dest> = Vec::new();
            for addr in found {
                let dest = super::dest(&RemoteAddress::Tcp {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                });
                if !dests.contains(&dest) {
                    dests.push(dest);
                }
            }
            Ok(dests)
        })
    }
}

/// What changed from `current` to `next`: the endpoints to add (in `next`'s order) and the
/// indexes in `current` to remove. Duplicates in `next` count once.
pub(crate) fn diff(current: &[Dest], next: &[Dest]) -> (Vec<Dest>, Vec<usize>) {
    let mut added: Vec<Dest> = Vec::new();
    for d in next {
        if !current.contains(d) && !added.contains(d) {
            added.push(d.clone());
        }
    }
    let removed = (0..current.len())
        .filter(|&i| !next.contains(&current[i]))
        .collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: u16) -> Dest {
        Dest::Tcp(format!("127.0.0.1:{port}"))
    }

    #[test]
    fn diff_adds_new_removes_gone_keeps_the_rest() {
        let current = [tcp(1), tcp(2), tcp(3)];
        let (added, removed) = diff(&current, &[tcp(3), tcp(4), tcp(1), tcp(4)]);
        assert_eq!(added, [tcp(4)]);
        assert_eq!(removed, [1]);
        let (added, removed) = diff(&current, &current);
        assert!(added.is_empty() && removed.is_empty());
        let (added, removed) = diff(&[], &[tcp(1), tcp(1)]);
        assert_eq!((added, removed), (vec![tcp(1)], vec![]));
        let (added, removed) = diff(&current, &[]);
        assert_eq!((added, removed), (vec![], vec![0, 1, 2]));
    }

    #[tokio::test]
    async fn dns_resolves_through_the_system_resolver() {
        let resolver = of(&Endpoints::Dns {
            host: "localhost".into(),
            port: 8972,
        });
        let found = resolver.resolve().await.expect("localhost resolves");
        assert!(!found.is_empty());
        for d in &found {
            assert!(d.to_string().ends_with(":8972"), "{d}");
        }
        let list = of(&Endpoints::List(vec![RemoteAddress::Tcp {
            host: "127.0.0.1".into(),
            port: 1,
        }]));
        assert_eq!(list.resolve().await, Ok(vec![tcp(1)]));
    }
}
