//! What checking a token costs a service, per request: `cargo bench -p platform --bench verify`.
//!
//! - `first_sight`: a token the verifier has not seen: header, Ed25519 signature, claims.
//! - `seen_before`: the same token again, answered from the verifier's cache of verified tokens.
//! - `identify`: the whole `Authorization` header → `Caller` step every request goes through.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use platform::auth::{Auth, Issuer, KeyPair, Role, Verifier};

fn main() {
    divan::main();
}

struct Fixture {
    issuer: Issuer,
    verifier: Arc<Verifier>,
}

fn fixture() -> Fixture {
    let key = KeyPair::generate();
    let verifier = Arc::new(Verifier::new("cafe", &[key.public()], &[]));
    Fixture { issuer: Issuer::new(&key, "cafe", Duration::from_secs(3600)), verifier }
}

#[divan::bench]
fn first_sight(bencher: divan::Bencher) {
    let key = KeyPair::generate();
    let token = Issuer::new(&key, "cafe", Duration::from_secs(3600))
        .issue("01012345678", Role::Customer, Some("01012345678"))
        .access_token;
    // A verifier of its own for each run, made outside the timing: nothing comes from a cache.
    bencher
        .with_inputs(|| Verifier::new("cafe", &[key.public()], &[]))
        .bench_refs(|verifier| verifier.verify(&token).expect("a valid token"));
}

#[divan::bench]
fn seen_before(bencher: divan::Bencher) {
    let f = fixture();
    let token = f.issuer.issue("01012345678", Role::Customer, Some("01012345678")).access_token;
    f.verifier.verify(&token).expect("a valid token");
    bencher.bench(|| f.verifier.verify(divan::black_box(&token)).expect("a valid token"));
}

#[divan::bench]
fn identify(bencher: divan::Bencher) {
    let f = fixture();
    let token = f.issuer.issue("manager", Role::Manager, None).access_token;
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::try_from(format!("Bearer {token}")).unwrap());
    let auth = Auth::On(f.verifier.clone());
    bencher.bench(|| auth.identify(divan::black_box(&headers)));
}
