//! SPEC §11: each service describes its own API at `/openapi.json`, and what it describes is
//! exactly what it serves; the gateway serves the public API (no internal call in it) at
//! `/openapi.json` and readable docs at `/docs`, with nothing fetched from elsewhere.

use std::collections::BTreeSet;

use contracts::ServiceName;
use reqwest::Method;
use serde_json::Value;

use crate::common::{spawn_app_with, TestApp};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The services that keep an API of their own: all behind the gateway but the web, which
/// serves pages.
fn with_an_api() -> impl Iterator<Item = ServiceName> {
    ServiceName::BEHIND_GATEWAY.into_iter().filter(|s| *s != ServiceName::Web)
}

/// `(METHOD, path)` of every operation `doc` describes.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("a path item").keys().map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

async fn description(app: &TestApp, base: &str) -> Value {
    let res = app.client.get(format!("{base}/openapi.json")).send().await.expect("GET /openapi.json");
    assert_eq!(res.status(), 200, "{base}/openapi.json");
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/json"), "{base}/openapi.json: {content_type}");
    res.json().await.expect("a JSON description")
}

/// Does `base` route `method path` to a handler? Everything but the router's own fallbacks
/// (404 "no such resource", 405) means it does: a 401 from the role check, a 415 for a
/// missing body, a 404 for an item that is not there.
async fn routed(app: &TestApp, base: &str, method: &str, path: &str) -> bool {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let res = app.client.request(method, format!("{base}{path}")).send().await.expect("a request");
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    !(status == 405 || (status == 404 && body["detail"] == "no such resource"))
}

/// Each service, asked every method on every path any service describes (ids as 1): it
/// serves exactly what its own description lists, nothing less and nothing more.
async fn each_service_serves_exactly_the_operations_it_describes(app: TestApp) {
    let mut described = Vec::new();
    for service in with_an_api() {
        let doc = description(&app, &app.service_url(service)).await;
        assert_eq!(doc["openapi"], "3.1.0", "{service}");
        described.push((service, operations(&doc)));
    }
    let every_path: BTreeSet<String> =
        described.iter().flat_map(|(_, ops)| ops.iter().map(|(_, p)| p.clone())).collect();
    let mut wrong = Vec::new();
    for (service, ops) in &described {
        let base = app.service_url(*service);
        for path in &every_path {
            let concrete = path.replace("{id}", "1");
            for method in METHODS {
                let is_described = ops.contains(&(method.to_string(), path.clone()));
                if routed(&app, &base, method, &concrete).await != is_described {
                    wrong
                        .push(format!("{service}: {method} {path} described {is_described}, served {}", !is_described));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "descriptions and routes differ:\n{}", wrong.join("\n"));
}

/// The gateway's description is the services' operations but the internal calls, each
/// saying who may call it and answering problem+json for its errors; `/docs` works from the
/// cafe's own assets.
async fn the_gateway_serves_the_public_description_and_readable_docs(app: TestApp) {
    let public = description(&app, &app.gateway()).await;
    assert_eq!(public["openapi"], "3.1.0");
    let mut want = BTreeSet::new();
    for service in with_an_api() {
        want.extend(operations(&description(&app, &app.service_url(service)).await));
    }
    let internal: BTreeSet<(String, String)> =
        contracts::calls::INTERNAL.iter().map(|p| ("POST".to_string(), p.to_string())).collect();
    assert!(internal.is_subset(&want), "the services describe their internal calls too");
    let want: BTreeSet<_> = want.difference(&internal).cloned().collect();
    assert_eq!(operations(&public), want, "the public API: every service's operation but the internal calls");

    assert_eq!(public["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let text = public.to_string();
    for (method, path) in &want {
        let op = &public["paths"][path][method.to_lowercase()];
        let what = format!("{method} {path}");
        assert!(op["description"].as_str().unwrap_or("").contains("**Who may call:**"), "{what}: who may call");
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{what}: responses"));
        for status in ["429", "503"] {
            assert!(responses.contains_key(status), "{what}: no {status}");
        }
        for (status, response) in responses {
            if status.starts_with('4') {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{what}: {status} is not a problem"
                );
            }
        }
        if op["security"].is_array() {
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{what}: a bearer requirement without its {status}");
            }
        }
    }
    // Every reference resolves in the document itself.
    for reference in text.split("\"$ref\":\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("an outside reference {reference}"));
        assert!(public.pointer(pointer).is_some(), "{reference} does not resolve");
    }
    assert!(!text.contains("x-internal"), "nothing internal in the public description");
    let schemas = public["components"]["schemas"].as_object().expect("schemas");
    for internal in ["Charge", "VoidPayment", "RecordCancellation"] {
        assert!(!schemas.contains_key(internal), "the internal calls' {internal} is not public");
    }

    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "the docs page: {page}");
    assert!(!page.contains("https://"), "the docs page loads nothing from elsewhere: {page}");
    for asset in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"] {
        let res = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
    }
    let init = app.client.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "the docs read the gateway's description: {init}");
}

#[tokio::test]
async fn each_service_serves_exactly_what_it_describes() {
    each_service_serves_exactly_the_operations_it_describes(spawn_app_with(&["--auth", "on"]).await).await;
}

#[tokio::test]
async fn the_gateway_serves_the_public_api_and_its_docs() {
    the_gateway_serves_the_public_description_and_readable_docs(spawn_app_with(&["--auth", "on"]).await).await;
}
