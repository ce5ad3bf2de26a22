//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's `leaderelection` does it.
//!
//! Only the leader runs Barge's controllers and scheduler (one writer for scheduling); other replicas
//! wait, ready to take over when the lease expires. The decision of what to do with the lease as we
//! see it is the pure function [`decide`]; [`LeaderElector`] does the I/O: it reads the Lease, writes it
//! with optimistic concurrency (the resourceVersion we read), and reports leadership through a
//! `watch` channel. A leader that cannot renew within `renew_deadline` steps down.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use barge_crds::consts::{LABEL_MANAGED_BY, MANAGED_BY_BARGE};

/// Timings of the election (client-go defaults: 15 s lease, 10 s renew deadline, 2 s retry).
#[derive(Clone, Debug)]
pub struct LeaseTimings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What the holder fields of a Lease say, reduced to what the decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renewed_at: Option<Timestamp>,
    pub duration: Duration,
}

/// What to do with the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds it, or the holder let it expire: take it (a new transition).
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a live lease: wait.
    Wait { holder: String },
}

/// Decides what to do with a lease seen at `now` by candidate `me`.
pub fn decide(view: &LeaseView, me: &str, now: Timestamp) -> LeaseDecision {
    match view.holder.as_deref() {
        None | Some("") => LeaseDecision::Acquire,
        Some(holder) if holder == me => LeaseDecision::Renew,
        Some(holder) => {
            let expired = match view.renewed_at {
                None => true,
                Some(renewed) => {
                    let duration =
                        SignedDuration::try_from(view.duration).unwrap_or(SignedDuration::MAX);
                    renewed
                        .checked_add(duration)
                        .map(|until| until <= now)
                        .unwrap_or(false)
                }
            };
            if expired {
                LeaseDecision::Acquire
            } else {
                LeaseDecision::Wait {
                    holder: holder.to_string(),
                }
            }
        }
    }
}

fn view_of(lease: &Lease) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity,
        renewed_at: spec.renew_time.map(|t| t.0),
        duration: Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64),
    }
}

/// Runs the election for one candidate identity.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
}

impl LeaderElector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timings,
        }
    }

    /// Starts the election loop. The returned receiver turns `true` when this candidate leads and
    /// `false` if it loses the lease afterwards. Dropping the task handle stops campaigning.
    pub fn spawn(self) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let handle = tokio::spawn(async move { self.run(tx).await });
        (rx, handle)
    }

    async fn run(self, tx: watch::Sender<bool>) {
        let mut last_renewal: Option<tokio::time::Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    if last_renewal.is_none() {
                        info!(identity = %self.identity, lease = %self.name, "became leader");
                    }
                    last_renewal = Some(tokio::time::Instant::now());
                    let _ = tx.send_if_modified(|leading| !std::mem::replace(leading, true));
                }
                Ok(false) => {
                    if last_renewal.take().is_some() {
                        warn!(identity = %self.identity, "lost the lease to another candidate");
                        let _ = tx.send(false);
                    }
                }
                Err(err) => {
                    debug!(error = %err, "lease request failed");
                    if let Some(at) = last_renewal {
                        if at.elapsed() > self.timings.renew_deadline {
                            warn!(identity = %self.identity, "could not renew the lease in time; stepping down");
                            last_renewal = None;
                            let _ = tx.send(false);
                        }
                    }
                }
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// One round: read the lease, decide, write. `Ok(true)` when we hold the lease afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.name).await?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    labels: Some(
                        [(LABEL_MANAGED_BY.to_string(), MANAGED_BY_BARGE.to_string())].into(),
                    ),
                    ..Default::default()
                },
                spec: Some(self.spec_for(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let (acquired_at, transitions) = match decide(&view_of(&lease), &self.identity, now) {
            LeaseDecision::Wait { holder } => {
                debug!(%holder, "lease held by another candidate");
                return Ok(false);
            }
            LeaseDecision::Renew => (
                spec.acquire_time.map(|t| t.0).unwrap_or(now),
                spec.lease_transitions.unwrap_or(0),
            ),
            LeaseDecision::Acquire => (now, spec.lease_transitions.unwrap_or(0) + 1),
        };
        lease.spec = Some(self.spec_for(now, acquired_at, transitions));
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn spec_for(&self, now: Timestamp, acquired_at: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timings.lease_duration.as_secs() as i32),
            acquire_time: Some(MicroTime(acquired_at)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Gives the lease up (on shutdown), so another replica can take over at once.
    pub async fn release(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let Some(mut lease) = api.get_opt(name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        api.replace(name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid timestamp")
    }

    fn view(holder: Option<&str>, renewed: Option<i64>, duration: u64) -> LeaseView {
        LeaseView {
            holder: holder.map(str::to_string),
            renewed_at: renewed.map(ts),
            duration: Duration::from_secs(duration),
        }
    }

    #[test]
    fn an_unheld_lease_is_acquired() {
        assert_eq!(
            decide(&view(None, None, 15), "a", ts(100)),
            LeaseDecision::Acquire
        );
        assert_eq!(
            decide(&view(Some(""), Some(99), 15), "a", ts(100)),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(
            decide(&view(Some("a"), Some(10), 15), "a", ts(100)),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn a_live_lease_of_another_is_respected_until_it_expires() {
        let held = view(Some("b"), Some(100), 15);
        assert_eq!(
            decide(&held, "a", ts(114)),
            LeaseDecision::Wait { holder: "b".into() }
        );
        assert_eq!(decide(&held, "a", ts(115)), LeaseDecision::Acquire);
    }

    #[test]
    fn a_lease_without_renew_time_is_expired() {
        assert_eq!(
            decide(&view(Some("b"), None, 15), "a", ts(100)),
            LeaseDecision::Acquire
        );
    }
}
