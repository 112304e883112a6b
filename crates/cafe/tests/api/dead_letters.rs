//! Dead letters from outside: an event no consumer can read is parked by each service that
//! receives it (not dropped, not blocking what comes after), counted in `cafe_dead_letters`,
//! listed for a manager by the admin listener and `cafe dead-letters`, and a retry of it
//! answers why it is still parked. Refusals change nothing.

use std::collections::BTreeSet;

use contracts::ServiceName;
use platform::Envelope;
use reqwest::Method;
use serde_json::json;

use crate::common::{eventually, TestApp};

in_both_modes_with_auth!(an_unreadable_event_is_parked_by_its_consumers_and_shown_to_a_manager);

/// The services that consume `Made`, and so receive the unreadable one.
fn consumers_of_made() -> BTreeSet<String> {
    [ServiceName::Delivery, ServiceName::Customercenter, ServiceName::Deliverycenter]
        .into_iter()
        .filter(|s| {
            let consumes: &[contracts::events::EventType] = match s {
                ServiceName::Delivery => delivery::events::CONSUMES,
                ServiceName::Customercenter => customercenter::events::CONSUMES,
                _ => deliverycenter::events::CONSUMES,
            };
            consumes.iter().any(|t| t.as_str() == "Made")
        })
        .map(|s| s.as_str().to_string())
        .collect()
}

/// `cafe dead-letters ARGS` against `admin` with `token`: whether it succeeded, and what it
/// printed (stdout and stderr).
async fn cli(admin: &str, token: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cafe"))
        .arg("dead-letters")
        .args(args)
        .args(["--admin", admin])
        .env("CAFE_TOKEN", token)
        .output()
        .await
        .expect("cafe runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn an_unreadable_event_is_parked_by_its_consumers_and_shown_to_a_manager(app: TestApp) {
    let manager = app.sign_in("manager", &app.manager_password()).await;
    let admin = app.admin_url().expect("an admin listener");
    let unreadable = Envelope {
        event_id: "made-by-a-newer-drink".into(),
        event_type: "Made".into(),
        body: r#"{"eventType":"Made","eventId":"made-by-a-newer-drink","orderId":"seven"}"#.into(),
        headers: Default::default(),
    };
    app.publish_raw(std::slice::from_ref(&unreadable)).await;
    // What comes after is handled as usual.
    let body = json!({"productName": "latte", "qty": 1, "phoneNumber": "01055550009"});
    let order = app.request_as(Some(&manager), Method::POST, "/orders", Some(&body)).await;
    let id = order.expect(201, "an order after the unreadable event")["id"].as_i64().expect("an order id");

    let want = consumers_of_made();
    let listed = eventually(app.deadline, async || {
        let r = app.request_to_as(&admin, Some(&manager), Method::GET, "/admin/dead-letters", None).await;
        let items = r.json["deadLetters"].as_array().cloned().unwrap_or_default();
        let services: BTreeSet<String> =
            items.iter().map(|i| i["service"].as_str().unwrap_or_default().to_string()).collect();
        if services == want {
            Ok(items)
        } else {
            Err(r.text)
        }
    })
    .await
    .expect("parked by every consumer of Made");
    for item in &listed {
        assert_eq!(item["eventId"], "made-by-a-newer-drink", "{item}");
        assert_eq!(item["attempts"], 0, "unreadable: parked without a try: {item}");
        assert!(item["error"].as_str().unwrap_or_default().contains("unreadable"), "{item}");
        assert_eq!(item["event"]["orderId"], "seven", "kept as it arrived: {item}");
    }
    let metrics = app.service_text(ServiceName::Delivery, "/actuator/prometheus").await;
    let gauge = metrics.lines().find(|l| l.starts_with("cafe_dead_letters")).unwrap_or_default();
    assert!(gauge.ends_with(" 1"), "delivery counts its dead letter: {gauge:?}");

    // Nobody but a manager, and never through the gateway.
    let r = app.request_to_as(&admin, None, Method::GET, "/admin/dead-letters", None).await;
    r.expect_problem(401, "the dead letters, anonymously");
    let retry = "/admin/dead-letters/delivery/made-by-a-newer-drink/retry";
    app.request_to_as(&admin, None, Method::POST, retry, None).await.expect_problem(401, "a retry, anonymously");
    let delivery = app.service_url(ServiceName::Delivery);
    let r = app.request_to_as(&delivery, None, Method::GET, "/admin/dead-letters", None).await;
    r.expect_problem(401, "delivery's own dead letters, anonymously");
    for path in ["/admin/dead-letters", retry] {
        app.request_as(Some(&manager), Method::GET, path, None).await.expect_problem(404, "on the gateway");
    }
    // Signed in is not enough: a customer or a barista is refused (403), on the admin
    // listener and on a service's own port.
    let staff = json!({"username": "dl-barista", "password": "a barista's password", "role": "barista"});
    app.request_as(Some(&manager), Method::POST, "/auth/users", Some(&staff)).await.expect(201, "a barista");
    let barista = app.sign_in("dl-barista", "a barista's password").await;
    app.post("/customers", &json!({"phoneNumber": "01055550019", "password": "a customer's password"}))
        .await
        .expect(201, "a customer");
    let customer = app.sign_in("01055550019", "a customer's password").await;
    for (who, token) in [("customer", &customer), ("barista", &barista)] {
        let r = app.request_to_as(&admin, Some(token), Method::GET, "/admin/dead-letters", None).await;
        r.expect_problem(403, &format!("the dead letters, as a {who}"));
        let r = app.request_to_as(&admin, Some(token), Method::POST, retry, None).await;
        r.expect_problem(403, &format!("a retry, as a {who}"));
        let r = app.request_to_as(&delivery, Some(token), Method::GET, "/admin/dead-letters", None).await;
        r.expect_problem(403, &format!("delivery's own dead letters, as a {who}"));
        let own_retry = "/admin/dead-letters/made-by-a-newer-drink/retry";
        let r = app.request_to_as(&delivery, Some(token), Method::POST, own_retry, None).await;
        r.expect_problem(403, &format!("delivery's own retry, as a {who}"));
    }

    // A retry of what still cannot be read says why, and keeps it parked.
    let r = app.request_to_as(&admin, Some(&manager), Method::POST, retry, None).await;
    let problem = r.expect_problem(409, "a retry of an unreadable event");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("unreadable"), "{}", r.text);
    let missing = "/admin/dead-letters/delivery/no-such-event/retry";
    app.request_to_as(&admin, Some(&manager), Method::POST, missing, None).await.expect_problem(404, "not parked");
    let nobody = "/admin/dead-letters/order/made-by-a-newer-drink/retry";
    app.request_to_as(&admin, Some(&manager), Method::POST, nobody, None)
        .await
        .expect_problem(404, "order parks nothing");

    // The command line says the same.
    let (ok, printed) = cli(&admin, &manager, &["list"]).await;
    assert!(ok, "{printed}");
    assert_eq!(printed.matches("made-by-a-newer-drink").count(), want.len(), "{printed}");
    let (ok, printed) = cli(&admin, &manager, &["retry", "delivery", "made-by-a-newer-drink"]).await;
    assert!(!ok && printed.contains("409") && printed.contains("still parked"), "{printed}");
    let (ok, printed) = cli(&admin, "not-a-token", &["list"]).await;
    assert!(!ok && printed.contains("401"), "{printed}");

    let after = app.request_to_as(&admin, Some(&manager), Method::GET, "/admin/dead-letters", None).await;
    assert_eq!(after.json["count"].as_u64(), Some(want.len() as u64), "refusals and failed retries change nothing");

    // And the order placed after the unreadable event reached the consumers that parked it.
    for collection in ["drinks", "mypages"] {
        eventually(app.deadline, async || {
            let r = app.request_as(Some(&manager), Method::GET, &format!("/{collection}?size=1000"), None).await;
            r.json["_embedded"][collection]
                .as_array()
                .is_some_and(|items| items.iter().any(|i| i["orderId"].as_i64() == Some(id)))
                .then_some(())
                .ok_or(r.text)
        })
        .await
        .unwrap_or_else(|e| panic!("order {id} in {collection} past the parked event: {}", e.last));
    }
}
