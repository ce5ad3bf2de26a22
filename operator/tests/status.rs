//! The status helper against the simulated API server: skip-if-unchanged and the
//! resourceVersion precondition that keeps a stale cache from moving a record backwards.

mod support;

use kube::api::PostParams;
use kube::ResourceExt;

use barge_crds::scheduling_policy::SchedulingPolicyStatus;
use barge_crds::SchedulingPolicy;
use barge_operator::metrics::Metrics;
use barge_operator::status::{apply_status, is_conflict, Precondition, StatusWrite};
use support::{from_yaml, Env};

#[tokio::test]
async fn status_writes_are_skipped_when_unchanged_and_guarded_by_resource_version() {
    let env = Env::start().await;
    let api = env.api::<SchedulingPolicy>();
    let metrics = Metrics::new();
    let policy: SchedulingPolicy = from_yaml("apiVersion: batch.barge.dev/v1alpha1\nkind: SchedulingPolicy\nmetadata: {name: p}\nspec: {}\n");
    let created = api
        .create(&PostParams::default(), &policy)
        .await
        .expect("create");

    let first = SchedulingPolicyStatus {
        observed_generation: Some(1),
        ..Default::default()
    };
    let written = match apply_status(
        &api,
        &created,
        &first,
        "test-manager",
        Precondition::ResourceVersion,
        &metrics,
    )
    .await
    .expect("write")
    {
        StatusWrite::Written { resource_version } => {
            let written = api.get(&created.name_any()).await.expect("get");
            assert_eq!(resource_version, written.resource_version());
            written
        }
        StatusWrite::Unchanged => panic!("a new status is written"),
    };
    assert_eq!(written.status.as_ref(), Some(&first));
    assert!(matches!(
        apply_status(
            &api,
            &written,
            &first,
            "test-manager",
            Precondition::ResourceVersion,
            &metrics
        )
        .await
        .expect("skip"),
        StatusWrite::Unchanged
    ));
    assert_eq!(
        (
            metrics.status_writes.get(),
            metrics.status_writes_skipped.get()
        ),
        (1, 1)
    );

    // Writing from the stale copy (read before the first write) is refused with 409...
    let second = SchedulingPolicyStatus {
        observed_generation: Some(2),
        ..Default::default()
    };
    let err = apply_status(
        &api,
        &created,
        &second,
        "test-manager",
        Precondition::ResourceVersion,
        &metrics,
    )
    .await
    .expect_err("stale");
    assert!(is_conflict(&err), "{err}");
    // ...while last-writer-wins writes go through.
    apply_status(
        &api,
        &created,
        &second,
        "test-manager",
        Precondition::None,
        &metrics,
    )
    .await
    .expect("unguarded write");
    assert_eq!(api.get("p").await.expect("get").status, Some(second));
    env.stop().await;
}
