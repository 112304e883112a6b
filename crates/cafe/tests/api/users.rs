//! `cafe user add`: a staff account added from the command line, the password on stdin, to
//! the database of a cafe that is running; the new barista signs in and reaches the drinks.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::Method;

use crate::common::spawn_app_with;

#[tokio::test]
async fn a_barista_added_from_the_command_line_signs_in_and_works() {
    let app = spawn_app_with(&["--auth", "on"]).await;
    let add = |name: &str, role: &str, password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cafe"))
            .args(["user", "add", name, "--role", role, "--data-dir"])
            .arg(app.data_dir())
            .env_remove("DATABASE_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cafe binary runs");
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child.wait_with_output().expect("cafe user add finishes")
    };
    let added = add("kim", "barista", "kim's long password");
    assert!(added.status.success(), "cafe user add: {}", String::from_utf8_lossy(&added.stderr));
    let kim = app.sign_in("kim", "kim's long password").await;
    app.request_as(Some(&kim), Method::GET, "/orderinfos", None).await.expect(200, "kim reads the barista queue");
    app.request_as(Some(&kim), Method::GET, "/deliveries", None).await.expect_problem(403, "kim is no rider");

    // Refusals say why and change nothing: a taken name, a customer role, a short password.
    for (name, role, password) in
        [("kim", "rider", "another long password"), ("lee", "customer", "a long password"), ("lee", "rider", "short")]
    {
        let refused = add(name, role, password);
        assert!(!refused.status.success(), "cafe user add {name} --role {role} was accepted");
        assert!(!refused.stderr.is_empty(), "a refusal says why");
    }
    app.request_as(Some(&kim), Method::GET, "/orderinfos", None).await.expect(200, "kim is still a barista");
    let r = app.post("/auth/token", &serde_json::json!({"username": "lee", "password": "short"})).await;
    r.expect_problem(401, "lee was never added");
}

/// `--menu FILE` sets the prices order charges: what is on it is priced from it, what is not
/// is refused naming the product; and no answer invites another site's pages to call (no CORS
/// headers, since no origin is configured).
#[tokio::test]
async fn the_menu_file_sets_the_prices_and_no_origin_is_invited() {
    let dir = tempfile::tempdir().unwrap();
    let menu = dir.path().join("menu.json");
    std::fs::write(&menu, r#"[{"productName": "flat white", "price": 5200}]"#).unwrap();
    let app = spawn_app_with(&["--auth", "on", "--menu", menu.to_str().unwrap()]).await;
    app.post("/customers", &serde_json::json!({"phoneNumber": "010-7777-0001", "password": "a long password"}))
        .await
        .expect(201, "register");
    let me = app.sign_in("01077770001", "a long password").await;
    let order = |product: &str| serde_json::json!({"productName": product, "qty": 2});
    let placed = app.request_as(Some(&me), Method::POST, "/orders", Some(&order("flat white"))).await;
    assert_eq!(placed.expect(201, "a flat white is on this menu")["amt"], 10_400);
    let refused = app.request_as(Some(&me), Method::POST, "/orders", Some(&order("latte"))).await;
    refused.expect_problem(422, "the shipped menu's latte is not on this one");
    let menu = app.get("/menu").await;
    assert!(menu.text.contains("flat white") && !menu.text.contains("latte"), "{}", menu.text);

    let res = reqwest::Client::new()
        .request(Method::OPTIONS, app.url("/orders"))
        .header("Origin", "https://elsewhere.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(res.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", res.headers());
}
