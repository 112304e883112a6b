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
