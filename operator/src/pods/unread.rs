//! Pod writes whose answer nobody reads: the pod a create or a patch returns is not decoded.
//!
//! `Api::create` and `Api::patch` decode the object the API server answers with into a typed
//! `Pod`, managedFields included — on an array that is two whole pods decoded per child (the
//! create and the release of the result finalizer) that the operator throws away: the caches
//! learn the pod from the watch. These send the same request through the same client (the
//! throttle and its priorities apply) and check the answer's status only; an error answer is
//! the same `kube::Error::Api` as `Api`'s.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde::Serialize;

/// Creates `pod` through `api` (its namespace) without decoding the answer.
pub async fn create_pod(api: &Api<Pod>, pod: &Pod) -> Result<(), kube::Error> {
    let body = serde_json::to_vec(pod).map_err(kube::Error::SerdeError)?;
    let mut request = Request::new(api.resource_url())
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("create");
    send(api, request).await
}

/// Patches pod `name` through `api` without decoding the answer.
pub async fn patch_pod<P: Serialize>(
    api: &Api<Pod>,
    name: &str,
    patch: &Patch<P>,
) -> Result<(), kube::Error> {
    let mut request = Request::new(api.resource_url())
        .patch(name, &PatchParams::default(), patch)
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("patch");
    send(api, request).await
}

/// Sends `request` with `api`'s client: Ok for a 2xx answer, whose body is read and dropped.
async fn send(api: &Api<Pod>, request: http::Request<Vec<u8>>) -> Result<(), kube::Error> {
    // The client is a handle (an Arc'd service): the clone is cheap.
    let client: kube::Client = api.clone().into_client();
    client.request_text(request).await.map(drop)
}
