//! Pod creations of placed units, run in the background a bounded number at a time.
//!
//! A pass does not wait for its creates: `bind` assumes each placed unit (its resources count
//! as used, its unit is not offered again) and hands the creation to the [`PodCreator`], whose
//! task keeps up to `--pod-create-concurrency` creates in flight continuously, starting the
//! next as soon as one is answered. The answers come back to the loop, which takes them in
//! before each pass: a refused or failed create drops the unit's assumption (it may be placed
//! again, after the backoff of a refusal), any other answer starts the wait for the caches to
//! show the pod. With API latency the creates of many passes overlap instead of each pass
//! paying for its slowest create.
//!
//! A creation whose assumption the loop dropped before it was sent (its job no longer offers
//! the unit: cancelled, terminated, deleted) is withdrawn and never sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use tokio::sync::mpsc;

use super::{CreateError, Creation};
use crate::status::is_conflict;

/// Set by the loop when the creation is no longer wanted (checked before it is sent).
pub(super) type Withdrawn = Arc<AtomicBool>;

/// A creation handed to the creator's task.
struct Order {
    creation: Creation,
    withdrawn: Withdrawn,
}

/// What became of a creation.
pub(super) enum Answer {
    /// Sent; what the API server answered.
    Sent(Box<Creation>, Result<(), CreateError>),
    /// Withdrawn before it was sent.
    Withdrawn,
}

/// The loop's end of the background creator: orders go in, answers come out.
pub struct PodCreator {
    orders: mpsc::UnboundedSender<Order>,
    answers: mpsc::UnboundedReceiver<Answer>,
    /// Orders handed over and not answered yet.
    outstanding: usize,
}

impl PodCreator {
    /// Starts the creator's task: up to `concurrency` creates in flight at any time. The task
    /// ends when the `PodCreator` is dropped (creates in flight then are abandoned: their
    /// deterministic names keep a new leader from twinning them).
    pub fn start(client: kube::Client, concurrency: usize) -> Self {
        let (orders, mut incoming) = mpsc::unbounded_channel::<Order>();
        let (answer, answers) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            futures::stream::poll_fn(move |cx| incoming.poll_recv(cx))
                .map(move |order| carry_out(client.clone(), order))
                .buffer_unordered(concurrency.max(1))
                .for_each(|a| {
                    // The loop is gone: nothing left to tell.
                    let _ = answer.send(a);
                    async {}
                })
                .await;
        });
        Self {
            orders,
            answers,
            outstanding: 0,
        }
    }

    /// Hands a creation over; returns the flag that withdraws it while it waits to be sent.
    pub(super) fn submit(&mut self, creation: Creation) -> Withdrawn {
        let withdrawn = Withdrawn::default();
        let order = Order {
            creation,
            withdrawn: withdrawn.clone(),
        };
        if self.orders.send(order).is_ok() {
            self.outstanding += 1;
        } else {
            // The task ended (only when the runtime shuts down): the unit stays assumed
            // until the loop, which is stopping too, is gone.
            withdrawn.store(true, Ordering::Release);
        }
        withdrawn
    }

    /// The next answer, at once if there is one.
    pub(super) fn try_answer(&mut self) -> Option<Answer> {
        let answer = self.answers.try_recv().ok()?;
        self.outstanding = self.outstanding.saturating_sub(1);
        Some(answer)
    }

    /// Waits for the next answer; pending for ever while nothing is outstanding.
    pub(super) async fn answer(&mut self) -> Answer {
        if self.outstanding == 0 {
            return std::future::pending().await;
        }
        match self.answers.recv().await {
            Some(answer) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                answer
            }
            None => std::future::pending().await,
        }
    }

    /// Creations handed over and not answered yet (queued or in flight).
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }
}

/// Sends one creation unless it was withdrawn.
async fn carry_out(client: kube::Client, order: Order) -> Answer {
    if order.withdrawn.load(Ordering::Acquire) {
        return Answer::Withdrawn;
    }
    let outcome = create(client, &order.creation).await;
    Answer::Sent(Box::new(order.creation), outcome)
}

/// Creates what a placement asks for: a gang's Service (AlreadyExists is fine) and then its
/// main pod; a single pod.
async fn create(client: kube::Client, creation: &Creation) -> Result<(), CreateError> {
    let namespace = &creation.placement.job.namespace;
    if let Some(service) = &creation.service {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        match services.create(&PostParams::default(), service).await {
            Err(source) if !is_conflict(&source) => {
                let object = format!("Service {}", service.name_any());
                return Err(CreateError { object, source });
            }
            _ => {}
        }
    }
    let pods: Api<Pod> = Api::namespaced(client, namespace);
    // The created pod comes to the caches by the watch: the answer is not decoded.
    crate::pods::create_pod(&pods, &creation.pod)
        .await
        .map_err(|source| CreateError {
            object: format!("pod {}", creation.pod.name_any()),
            source,
        })
}
