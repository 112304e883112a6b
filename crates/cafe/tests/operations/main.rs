//! Running the cafe: it is up quickly and says where it listens; health answers as Actuator
//! does; SIGTERM lets an in-flight request finish and exits 0; logs land under
//! `<log-dir>/<service>/` in the original's access-log pattern; an idle cafe uses no CPU.
//!
//! Every test here is about the `cafe up` process itself (how long the binary takes to be
//! ready and what it prints, its CPU time, its signals, its log files), so each runs the
//! binary rather than building the cafe in the test's process.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use contracts::ServiceName;
use serde_json::{json, Value};

use common::{eventually, spawn_process_with};

/// How long a wait here may take.
const DEADLINE: Duration = Duration::from_secs(20);

fn order() -> Value {
    json!({"phoneNumber": "010-1234-5678", "productName": "latte", "qty": 1, "amt": 4500})
}

#[tokio::test]
async fn it_is_up_in_under_two_seconds_and_health_answers_like_actuator() {
    let cafe = spawn_process_with(&[], &[]).await;
    assert!(cafe.started_in() < Duration::from_secs(2), "took {:?}", cafe.started_in());
    let http = reqwest::Client::new();
    for (name, base) in cafe.urls() {
        let health: Value = http.get(format!("{base}/actuator/health")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "UP", "{name}: {health}");
        for path in ["/actuator/health/liveness", "/actuator/health/readiness", "/liveness", "/readiness"] {
            let res = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(res.status(), 200, "{name}{path}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["status"], "UP", "{name}{path}");
        }
        if name != ServiceName::Gateway {
            // The web keeps no database: it reads through the API and tails the broker.
            if name != ServiceName::Web {
                assert_eq!(health["components"]["db"]["status"], "UP", "{name}: {health}");
            }
            assert_eq!(health["components"]["broker"]["status"], "UP", "{name}: {health}");
        }
    }
    let order_health = cafe.service_json(ServiceName::Order, "/actuator/health").await;
    assert_eq!(order_health["components"]["paymentCircuit"]["details"]["state"], "CLOSED", "{order_health}");
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn an_idle_cafe_uses_no_cpu() {
    let cafe = spawn_process_with(&[], &[]).await;
    let http = reqwest::Client::new();
    let gw = cafe.gateway();
    let placed: Value = http.post(format!("{gw}/orders")).json(&order()).send().await.unwrap().json().await.unwrap();
    let id = placed["id"].as_i64().unwrap();
    eventually(DEADLINE, async || {
        let row: Value = http.get(format!("{gw}/mypages/{id}")).send().await.ok()?.json().await.ok()?;
        (row["status"] == "Received").then_some(())
    })
    .await
    .expect("the order's views");
    let pid = cafe.pid();
    let before = cpu_ticks(pid);
    // A measuring window, not a wait for something to happen: nothing should.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_ticks(pid) - before;
    assert!(used <= 1, "an idle cafe used {used} clock ticks in 3 s");
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_zero() {
    let cafe = spawn_process_with(&["--payment-delay-ms", "400-400"], &[]).await;
    let http = reqwest::Client::new();
    let gw = cafe.gateway();
    let order_url = cafe.service_url(ServiceName::Order);
    let placing = tokio::spawn({
        let (http, gw) = (http.clone(), gw.clone());
        async move { http.post(format!("{gw}/orders")).json(&order()).send().await }
    });
    // Wait until order is serving it (its in-flight gauge counts the POST).
    eventually(DEADLINE, async || {
        let text = http.get(format!("{order_url}/actuator/prometheus")).send().await.ok()?.text().await.ok()?;
        let line = text.lines().find(|l| l.starts_with("http_server_requests_in_flight"))?;
        // The scrape itself is in flight too.
        (line.rsplit(' ').next()?.parse::<i64>().ok()? >= 2).then_some(())
    })
    .await
    .expect("the order in flight");
    let pid = cafe.pid();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let res = placing.await.unwrap().expect("the in-flight request is answered");
    assert_eq!(res.status(), 201);
    let status = cafe.wait_for_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(http.get(format!("{gw}/orders")).send().await.is_err(), "nothing listens after exit");
}

fn read_dir_text(dir: &Path, prefix: &str) -> Option<String> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().find(|e| e.file_name().to_string_lossy().starts_with(prefix))?;
    let name = entry.file_name().to_string_lossy().to_string();
    // Daily files: <prefix>.YYYY-MM-DD.log
    assert!(name.ends_with(".log") && name.len() == prefix.len() + ".YYYY-MM-DD.log".len(), "{name}");
    std::fs::read_to_string(entry.path()).ok()
}

#[tokio::test]
async fn logs_are_under_the_log_dir_per_service_in_the_original_pattern() {
    let cafe = spawn_process_with(&[], &[]).await;
    let logs = cafe.log_dir();
    let http = reqwest::Client::new();
    let res = http.post(format!("{}/orders", cafe.gateway())).json(&order()).send().await.unwrap();
    assert_eq!(res.status(), 201);
    // `%h %l %u %t "%r" %s %bbyte %Dms`
    let line = eventually(DEADLINE, async || {
        let text = read_dir_text(&logs.join("gateway"), "access")?;
        text.lines().find(|l| l.contains("\"POST /orders HTTP/1.1\" 201")).map(str::to_string)
    })
    .await
    .expect("the gateway's access log line");
    let (host, rest) = line.split_once(" - - [").unwrap();
    assert_eq!(host, "127.0.0.1", "{line}");
    let (when, rest) = rest.split_once("] ").unwrap();
    assert!(when.ends_with(" +0000") && when.len() == "25/Nov/2026:13:31:03 +0000".len(), "{line}");
    let tail = rest.strip_prefix("\"POST /orders HTTP/1.1\" 201 ").unwrap();
    let (bytes, ms) = tail.split_once("byte ").unwrap();
    assert!(bytes.parse::<u64>().unwrap() > 0, "{line}");
    assert!(ms.strip_suffix("ms").unwrap().parse::<u64>().is_ok(), "{line}");
    for service in ["order", "payment"] {
        eventually(DEADLINE, async || read_dir_text(&logs.join(service), "access")?.contains("POST /").then_some(()))
            .await
            .unwrap_or_else(|t| panic!("{service}'s access log: {t:?}"));
        assert!(logs
            .join(service)
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(service)));
    }
    eventually(DEADLINE, async || read_dir_text(&logs.join("cafe"), "cafe")?.contains("cafe is up").then_some(()))
        .await
        .expect("the process log");
}
