//! SPEC §9 for the delivery center, with real signed tokens: riders and managers read the
//! pages, no one else.

use axum::http::{header, Method};
use deliverycenter::events::UpdateDeliveryPage;

use crate::helpers::spawn_behind;
use crate::pages::ordered;
use platform::testing::signed::{Signed, Who};
use Who::*;

#[tokio::test]
async fn only_riders_and_managers_read_the_delivery_pages() {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    app.consume(&UpdateDeliveryPage, &[ordered(1)]).await;
    for who in [Anonymous, Customer("01012345678"), Barista, Rider, Manager, Service] {
        let status = match who {
            Rider | Manager => 200,
            Anonymous => 401,
            _ => 403,
        };
        for uri in ["/deliverypages", "/deliverypages/1", "/deliverypages/search/findByOrderId?orderId=1"] {
            signed.act_as(who);
            let answer = app.request(Method::GET, uri, None).await;
            assert_eq!(answer.status.as_u16(), status, "{who:?} reads {uri}: {}", answer.body);
            if status == 401 {
                assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer", "{who:?} reads {uri}");
            }
            if status == 200 && uri == "/deliverypages" {
                assert_eq!(answer.body["page"]["totalElements"], 1);
            }
        }
    }
}
