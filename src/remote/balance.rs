//! Power of two choices on outstanding calls: of two endpoints drawn at random from those in
//! rotation, a call takes the one with fewer requests in flight on its connection
//! (`Conn::in_flight`, the connection gate's count). It costs two random draws and two atomic
//! loads; it needs no shared lock and no periodic state, and it steers away from a slow
//! endpoint as its requests pile up (Mitzenmacher; what Finagle, linkerd and Envoy's
//! `LEAST_REQUEST` do).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::snapshot::Linked;

/// The endpoints calls may take: connected, health-checked, not ejected. Published in the
/// snapshot by the fleet owner; a new set is a new value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rotation {
    members: Vec<Member>,
}

/// One endpoint in rotation.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) linked: Linked,
    /// Calls sent to it (attempts), shown in its status.
    pub(crate) calls: Arc<AtomicU64>,
}

impl Rotation {
    pub(crate) fn new(members: Vec<Member>) -> Self {
        Rotation { members }
    }

    /// Picks an endpoint for one attempt, never connection `failed` (a call's request came
    /// back unsent from it), and counts the call.
    pub(crate) fn pick(&self, failed: Option<u64>) -> Option<&Linked> {
        let member = self.choose(
            failed,
            |n| fastrand::usize(..n),
            |m| m.linked.conn.in_flight(),
        )?;
        member.calls.fetch_add(1, Relaxed);
        Some(&member.linked)
    }

    /// Two draws among the members other than `failed` (`draw(n)` is in `0..n`), the one
    /// with the lower `load` (the first on a tie).
    fn choose(
        &self,
        failed: Option<u64>,
        mut draw: impl FnMut(usize) -> usize,
        load: impl Fn(&Member) -> u64,
    ) -> Option<&Member> {
        let skip = failed.and_then(|g| self.members.iter().position(|m| m.linked.generation == g));
        let n = self.members.len() - usize::from(skip.is_some());
        // The i-th candidate, stepping over the failed one.
        let at = |i: usize| {
            &self.members[if skip.is_some_and(|s| i >= s) {
                i + 1
            } else {
                i
            }]
        };
        match n {
            0 => None,
            1 => Some(at(0)),
            _ => {
                let a = draw(n);
                let mut b = draw(n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (at(a), at(b));
                Some(if load(b) < load(a) { b } else { a })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::tests::{TestPlugin, accept};

    /// `n` members over in-process connections to one test plugin.
    async fn rotation(n: usize) -> (Rotation, Vec<crate::call::tests::Server>) {
        let plugin = TestPlugin(Arc::default());
        let mut members = vec![];
        let mut servers = vec![];
        for g in 1..=n as u64 {
            let (client, server) = tokio::io::duplex(64 * 1024);
            servers.push(accept(plugin.clone(), server));
            let conn = crate::conn::over(client, None)
                .await
                .expect("in-process connection");
            members.push(Member {
                linked: Linked::new(conn, g),
                calls: Arc::default(),
            });
        }
        (Rotation::new(members), servers)
    }

    #[tokio::test]
    async fn never_the_failed_connection() {
        let (r, _servers) = rotation(3).await;
        for _ in 0..200 {
            let picked = r.pick(Some(2)).expect("two left").generation;
            assert_ne!(picked, 2);
        }
        let (one, _s) = rotation(1).await;
        assert!(one.pick(Some(1)).is_none(), "nothing but the failed one");
        assert_eq!(one.pick(Some(7)).map(|l| l.generation), Some(1));
        assert!(Rotation::default().pick(None).is_none());
    }

    #[tokio::test]
    async fn the_less_loaded_of_the_two_draws_wins() {
        let (r, _servers) = rotation(4).await;
        // Draws 0 and then 0 again (stepped over the first: member 1).
        let pick = |busy: &[u64]| {
            let mut draws = [0usize, 0].into_iter();
            r.choose(
                None,
                |_| draws.next().unwrap_or(0),
                |m| busy[(m.linked.generation - 1) as usize],
            )
            .map(|m| m.linked.generation)
        };
        assert_eq!(pick(&[0, 0, 0, 0]), Some(1), "a tie: the first draw");
        assert_eq!(pick(&[3, 1, 0, 0]), Some(2), "member 1 has fewer in flight");
        assert_eq!(pick(&[1, 3, 0, 0]), Some(1));
    }

    #[tokio::test]
    async fn draws_skip_the_failed_member() {
        let (r, _servers) = rotation(3).await;
        // Candidates are generations 1 and 3: draw 1 is generation 3.
        for (first, expected) in [(0usize, 1u64), (1, 3)] {
            let mut draws = [first, 0].into_iter();
            let m = r
                .choose(Some(2), |_| draws.next().unwrap_or(0), |_| 0)
                .expect("a member");
            assert_eq!(m.linked.generation, expected);
        }
    }

    #[tokio::test]
    async fn the_snapshot_picks_from_the_rotation_never_the_failed_one() {
        use crate::{
            call::CallSettings,
            config::{PluginConfig, PluginKind, RemoteAddress, RemoteConfig},
            remote::FleetView,
            snapshot::Snapshot,
            status::PluginState,
        };
        let (rotation, _servers) = rotation(2).await;
        let config = PluginConfig::new(
            "f",
            PluginKind::Remote(RemoteConfig::new(RemoteAddress::Tcp {
                host: "h".into(),
                port: 1,
            })),
        );
        let mut s = Snapshot::new(PluginState::Ready, CallSettings::of(&config));
        s.fleet = Some(Arc::new(FleetView {
            rotation,
            endpoints: vec![],
        }));
        for _ in 0..100 {
            assert_eq!(s.ready_link(Some(1)).map(|l| l.generation), Some(2));
        }
        s.state = PluginState::Connecting { attempt: 0 };
        assert!(s.ready_link(None).is_none(), "only a ready plugin's");
    }

    #[tokio::test]
    async fn picks_spread_and_are_counted() {
        let (r, _servers) = rotation(4).await;
        for _ in 0..4000 {
            r.pick(None);
        }
        let counts: Vec<u64> = r.members.iter().map(|m| m.calls.load(Relaxed)).collect();
        assert_eq!(counts.iter().sum::<u64>(), 4000);
        assert!(counts.iter().all(|&c| c > 600), "{counts:?}");
    }
}
