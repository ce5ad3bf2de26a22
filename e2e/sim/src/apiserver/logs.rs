//! `pods/log`: like kube-apiserver, find the pod's node and proxy the request to that node's
//! kubelet over HTTPS (`https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/{ns}/{pod}/{container}`,
//! the kubelet's certificate not verified, as without `--kubelet-certificate-authority`),
//! streaming the kubelet's answer back (so `kubectl logs -f` follows). A kubelet that answers
//! plain HTTP fails here as it does behind kube-apiserver.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::response::Response;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::paths::{Query, Target};
use super::status::{ApiError, ApiResult};
use super::store::{NODES_STORAGE, PODS_STORAGE};
use super::ApiServer;

/// Query parameters passed through to the kubelet.
pub const PASSED_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
];

/// Pick the container a log request is for (kube-apiserver's rules and messages).
pub fn pick_container(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let inits = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    match requested {
        Some(c) => {
            if containers
                .iter()
                .chain(&inits)
                .chain(&ephemeral)
                .any(|x| x == c)
            {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// The kubelet endpoint (host, port) a node advertises.
pub fn kubelet_endpoint(node: &Value) -> Option<(String, u16)> {
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)?;
    let addrs = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?;
    let ip = addrs
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addrs.first())?
        .get("address")?
        .as_str()?;
    Some((ip.to_string(), u16::try_from(port).ok()?))
}

pub async fn logs(api: &Arc<ApiServer>, target: &Target, q: &Query) -> ApiResult<Response> {
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let (pod, node) = {
        let st = api
            .state
            .lock()
            .map_err(|_| ApiError::internal("store poisoned"))?;
        let pod = st
            .store
            .get(PODS_STORAGE, &(ns.clone(), name.clone()))
            .ok_or_else(|| ApiError::not_found("pods", &name))?;
        let node = pod
            .node_name
            .as_ref()
            .and_then(|n| st.store.get(NODES_STORAGE, &(String::new(), n.clone())));
        (pod.value(), node.map(|n| n.value()))
    };
    let container = pick_container(&pod, q.get("container"))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        return Ok(Response::new(Body::empty()));
    }
    let node = node.ok_or_else(|| ApiError::not_found("nodes", node_name))?;
    let (host, port) = kubelet_endpoint(&node)
        .ok_or_else(|| ApiError::internal(format!("node {node_name} has no kubelet endpoint")))?;
    let mut path = format!("/containerLogs/{ns}/{name}/{container}");
    let params: Vec<(String, String)> = PASSED_PARAMS
        .iter()
        .filter_map(|p| q.get(p).map(|v| (p.to_string(), v.to_string())))
        .collect();
    if !params.is_empty() {
        path.push('?');
        path.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish(),
        );
    }
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!("Get \"https://{host}:{port}{path}\": {e}"))
    };
    static KUBELET_TLS: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    let connector = KUBELET_TLS.get_or_init(crate::tls::kubelet_client);
    let stream = crate::tls::connect_kubelet(connector, &host, port)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(path.as_str())
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = resp.status();
    let mut out = Response::new(Body::new(resp.into_body()));
    *out.status_mut() = status;
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(pick_container(&pod, Some("b")).unwrap(), "b");
        assert_eq!(pick_container(&pod, Some("i")).unwrap(), "i");
        let e = pick_container(&pod, None).unwrap_err();
        assert!(e.body["message"].as_str().unwrap().contains("a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"));
        assert_eq!(pick_container(&pod, Some("z")).unwrap_err().code, 400);
        let single = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(pick_container(&single, None).unwrap(), "a");
    }

    #[test]
    fn endpoint_from_node() {
        let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(kubelet_endpoint(&node), Some(("127.0.0.1".into(), 10250)));
        assert_eq!(kubelet_endpoint(&json!({})), None);
    }
}
