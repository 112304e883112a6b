use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use tower::ServiceExt;

use super::*;

struct Cafe {
    people: KeyPair,
    services: KeyPair,
    verifier: Verifier,
}

fn cafe(namespace: &str) -> Cafe {
    let (people, services) = (KeyPair::generate(), KeyPair::generate());
    let verifier = Verifier::new(namespace, &[people.public()], &[services.public()]);
    Cafe { people, services, verifier }
}

fn issue(key: &KeyPair, role: Role, phone: Option<&str>) -> String {
    Issuer::new(key, "cafe", Duration::from_secs(300)).issue("someone", role, phone).access_token
}

/// `token` with its payload replaced by `edit(payload)`, the signature kept.
fn edited(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut payload);
    format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2])
}

#[test]
fn a_token_issued_with_our_key_verifies_with_its_claims() {
    let c = cafe("cafe");
    let claims = c.verifier.verify(&issue(&c.people, Role::Customer, Some("01012345678"))).unwrap();
    assert_eq!(
        (claims.role, claims.phone.as_deref(), claims.sub.as_str()),
        (Role::Customer, Some("01012345678"), "someone")
    );
    assert!(claims.exp > claims.iat);
    // Verified twice (the second from the cache), the same claims.
    assert_eq!(c.verifier.verify(&issue(&c.services, Role::Service, None)).unwrap().role, Role::Service);
}

#[test]
fn forged_tokens_are_refused() {
    let c = cafe("cafe");
    let good = issue(&c.people, Role::Customer, Some("01012345678"));
    c.verifier.verify(&good).unwrap();
    let other_cafe = cafe("cafe");
    let expired = {
        let iat = now_secs() - 3600;
        let claims =
            Claims { sub: "x".into(), role: Role::Manager, phone: None, iss: "cafe".into(), iat, exp: iat + 60 };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(c.people.public().kid());
        jsonwebtoken::encode(&header, &claims, &c.people.encoding_key()).unwrap()
    };
    let unsigned = {
        let parts: Vec<&str> = good.split('.').collect();
        let header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, c.people.public().kid()));
        format!("{header}.{}.", parts[1])
    };
    let cases = [
        ("role edited", edited(&good, |p| p["role"] = "manager".into()), Rejected::Invalid),
        ("phone edited", edited(&good, |p| p["phone"] = "01099999999".into()), Rejected::Invalid),
        ("another cafe's key", issue(&other_cafe.people, Role::Manager, None), Rejected::UnknownKey),
        ("alg none", unsigned, Rejected::Malformed),
        ("expired", expired, Rejected::Expired),
        ("a person's role under the service key", issue(&c.services, Role::Manager, None), Rejected::Invalid),
        ("the service role under the people key", issue(&c.people, Role::Service, None), Rejected::Invalid),
        (
            "another namespace",
            {
                Issuer::new(&c.people, "elsewhere", Duration::from_secs(60))
                    .issue("x", Role::Manager, None)
                    .access_token
            },
            Rejected::Invalid,
        ),
        ("garbage", "not.a.token".into(), Rejected::Malformed),
        ("a customer without a phone", issue(&c.people, Role::Customer, None), Rejected::Invalid),
    ];
    for (what, token, why) in cases {
        assert_eq!(c.verifier.verify(&token).map(|_| ()), Err(why), "{what}");
    }
}

#[test]
fn keys_survive_pem_and_rotation_keeps_old_tokens_valid() {
    let old = KeyPair::generate();
    let new = KeyPair::from_pem(&KeyPair::generate().to_pem()).unwrap();
    assert_eq!(KeyPair::from_pem(&old.to_pem()).unwrap().public(), old.public());
    let both = format!("{}{}", old.public().to_pem(), new.public().to_pem());
    let keys = PublicKey::all_from_pem(&both).unwrap();
    assert_eq!(keys, vec![old.public(), new.public()]);
    let verifier = Verifier::new("cafe", &keys, &[]);
    for key in [&old, &new] {
        verifier.verify(&issue(key, Role::Barista, None)).unwrap();
    }
    assert!(PublicKey::all_from_pem("").is_err());
    assert!(KeyPair::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
}

#[test]
fn a_key_file_is_created_once_readable_only_by_its_owner() {
    let dir = std::env::temp_dir().join(format!("cafe-auth-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("keys").join("identity.pem");
    let first = KeyPair::load_or_create(&path).unwrap();
    let again = KeyPair::load_or_create(&path).unwrap();
    assert_eq!(first.public(), again.public());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever bytes arrive as a token: no panic, never accepted.
    #[test]
    fn arbitrary_bytes_are_never_a_token(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let c = cafe_for_fuzzing();
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(c.verifier.verify(&text).is_err());
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            headers.insert(header::AUTHORIZATION, value);
            prop_assert!(!matches!(Auth::On(c.verifier.clone()).identify(&headers), Caller::Signed(_)));
        }
    }

    /// A real token with any one byte changed is refused.
    #[test]
    fn a_token_with_one_byte_changed_is_refused(at in any::<prop::sample::Index>(), to in any::<u8>()) {
        let c = cafe_for_fuzzing();
        let token = issue(&c.people, Role::Customer, Some("01012345678"));
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        bytes[i] = to;
        let changed = String::from_utf8_lossy(&bytes).to_string();
        // Base64 may decode two spellings of the last character alike; anything else is refused.
        if let Ok(claims) = c.verifier.verify(&changed) {
            let original = c.verifier.verify(&token).unwrap();
            prop_assert_eq!(claims.as_ref(), original.as_ref());
        }
    }
}

struct Fuzz {
    people: KeyPair,
    verifier: Arc<Verifier>,
}

fn cafe_for_fuzzing() -> &'static Fuzz {
    static FUZZ: std::sync::OnceLock<Fuzz> = std::sync::OnceLock::new();
    FUZZ.get_or_init(|| {
        let c = cafe("cafe");
        Fuzz { people: c.people, verifier: Arc::new(c.verifier) }
    })
}

#[tokio::test]
async fn routes_let_in_only_the_roles_declared_beside_them() {
    let c = cafe("cafe");
    let auth = Auth::On(Arc::new(c.verifier));
    let app = |auth: Auth| {
        Router::new()
            .route("/open", get(|| async { "open" }))
            .route(
                "/staff",
                get(|caller: Caller| async move { format!("{:?}", caller.role()) })
                    .route_layer(allow(&[Role::Barista, Role::Manager])),
            )
            .layer(axum::middleware::from_fn_with_state(auth, identify))
    };
    let call = |auth: Auth, path: &'static str, token: Option<String>| async move {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        app(auth).oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    };
    let barista = issue(&c.people, Role::Barista, None);
    let customer = issue(&c.people, Role::Customer, Some("01012345678"));
    assert_eq!(call(auth.clone(), "/open", None).await.status(), StatusCode::OK);
    assert_eq!(call(auth.clone(), "/staff", Some(barista)).await.status(), StatusCode::OK);
    let anonymous = call(auth.clone(), "/staff", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(anonymous.headers()[header::CONTENT_TYPE], "application/problem+json");
    let forged = call(auth.clone(), "/staff", Some(edited(&customer, |p| p["role"] = "barista".into()))).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(forged.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("invalid_token"));
    assert_eq!(call(auth.clone(), "/staff", Some(customer)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(call(Auth::Off, "/staff", None).await.status(), StatusCode::OK);
}

#[test]
fn a_credential_is_a_service_token_reused_until_half_its_life() {
    let key = KeyPair::generate();
    let credential = Credential::new(&key, "cafe", "order");
    let (first, second) = (credential.header(), credential.header());
    assert_eq!(first, second);
    assert!(first.is_sensitive());
    let verifier = Verifier::new("cafe", &[], &[key.public()]);
    let token = first.to_str().unwrap().strip_prefix("Bearer ").unwrap();
    let claims = verifier.verify(token).unwrap();
    assert_eq!((claims.role, claims.sub.as_str()), (Role::Service, "order"));
}
