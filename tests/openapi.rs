//! The described API: the OpenAPI document is generated from the code, the
//! copy committed at docs/openapi.json is that document (regenerate it with
//! `cargo run -- openapi > docs/openapi.json`), it holds together (every
//! operation answers something, every error answer is the problem schema,
//! every reference resolves), it describes every route of src/engine/api.rs,
//! and the running API serves exactly it at /v1/openapi.json without a
//! credential, while every described operation is routed.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroU32;

use common::*;
use hostwright::engine::auth::{Authenticator, FailureLimit};
use hostwright::engine::openapi;
use hostwright::engine::problem::Kind;
use hostwright::engine::scripted::Script;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn generated() -> Value {
    serde_json::from_str(&openapi::document()).expect("the document is JSON")
}

/// Every `(method, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let committed = std::fs::read_to_string(repo().join("docs/openapi.json"))
        .expect("docs/openapi.json is committed");
    let generated = openapi::document();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json differs from the document the code generates (first at line {}); \
             regenerate it: cargo run -- openapi > docs/openapi.json",
            first + 1
        );
    }
}

#[test]
fn the_document_holds_together() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let ops = operations(&doc);
    assert!(!ops.is_empty());
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{at}: no operationId"));
        assert!(ids.insert(id.to_string()), "{at}: operationId {id} twice");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{at}: no success answer"
        );
        for (status, r) in responses {
            assert!(
                r["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{at} {status}"
            );
            let code: u16 = status
                .parse()
                .unwrap_or_else(|_| panic!("{at}: status {status}"));
            if code >= 400 {
                assert_eq!(
                    r["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{at} {status}: an error answer must be the problem schema"
                );
                assert_eq!(r["content"].as_object().unwrap().len(), 1, "{at} {status}");
            } else {
                assert!(
                    r["content"].is_object(),
                    "{at} {status}: a success without a body"
                );
            }
        }
        // Path parameters are declared.
        for name in path
            .split('{')
            .skip(1)
            .map(|p| p.split('}').next().unwrap())
        {
            assert!(
                op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{at}: path parameter {name} undeclared"
            );
        }
        // Security names a declared scheme.
        for req in op["security"].as_array().into_iter().flatten() {
            for scheme in req.as_object().unwrap().keys() {
                assert!(
                    doc["components"]["securitySchemes"][scheme].is_object(),
                    "{at}: unknown security scheme {scheme}"
                );
            }
        }
    }
    // The problem schema lists exactly the API's problem types.
    let types: BTreeSet<String> =
        doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
            .as_array()
            .expect("type enum")
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
    let kinds: BTreeSet<String> = Kind::ALL.iter().map(|k| k.type_uri()).collect();
    assert_eq!(types, kinds);
    // Every reference resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    // Ops operations name their scope.
    for (method, path, op) in &ops {
        if path.starts_with("/v1/")
            && path != "/v1/openapi.json"
            && !(method == "post" && path == "/v1/contracts")
        {
            let scopes = &op["security"][0]["ops_token"];
            assert!(
                scopes.as_array().is_some_and(|s| s.len() == 1),
                "{method} {path}: no ops scope"
            );
        }
    }
}

/// Every route of src/engine/api.rs goes through `routes!` (which reads
/// the path from the handler's description) and each is an operation of
/// the document: a route added with plain `.route(` would be undescribed.
#[test]
fn every_route_of_the_api_is_described() {
    let src = std::fs::read_to_string(repo().join("src/engine/api.rs")).unwrap();
    for plain in [".route(", ".route_service(", ".nest(", ".nest_service("] {
        assert!(
            !src.contains(plain),
            "api.rs adds a route with `{plain}`: use routes!(...)"
        );
    }
    let routed: BTreeSet<String> = src
        .split("routes!(")
        .skip(1)
        .map(|rest| rest.split(')').next().unwrap().trim().to_string())
        .collect();
    assert!(routed.len() >= 16, "{routed:?}");
    let ids: BTreeSet<String> = operations(&generated())
        .into_iter()
        .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(routed, ids);
}

#[tokio::test]
async fn the_api_serves_the_document_and_routes_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let engine = engine(&url, &Script::default(), fast_settings()).await;
    let authn = Authenticator::new(
        None,
        None,
        FailureLimit {
            per_minute: NonZeroU32::new(60).unwrap(),
            burst: NonZeroU32::new(1000).unwrap(),
        },
    );
    let app = hostwright::engine::api::router(engine.clone(), authn);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(hostwright_tls::server::serve(
        listener,
        app,
        None,
        std::future::pending(),
    ));
    let http = hostwright_tls::client();
    let base = format!("http://{addr}");

    let resp = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "no credential needed");
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), openapi::document());

    // Each described operation is routed: without a credential it answers
    // anything but the router's own 404/405.
    for (method, path, _) in operations(&generated()) {
        let concrete = path.replace("{id}", "no-such-id");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = http
            .request(m, format!("{base}{concrete}"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        let kind: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(
            status != 405 && kind["type"] != Kind::NotFound.type_uri(),
            "{method} {path} is described but not routed: {status} {body}"
        );
    }
}
