//! SPEC §9 for the delivery center, with real signed tokens: riders and managers read the
//! pages, no one else.

use axum::http::Method;
use deliverycenter::events::UpdateDeliveryPage;

use crate::helpers::spawn_behind;
use crate::pages::ordered;
use platform::testing::signed::{answers, Signed, Who};
use Who::*;

#[tokio::test]
async fn only_riders_and_managers_read_the_delivery_pages() {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    app.consume(&UpdateDeliveryPage, &[ordered(1)]).await;
    for uri in [
        "/deliverypages",
        "/deliverypages/1",
        "/deliverypages/search/findByOrderId?orderId=1",
        "/deliverypages/search/findByStatus?status=Ordered",
    ] {
        let read =
            signed.check_table(&app, Method::GET, uri, None, answers(Who::EVERYONE, &[Rider, Manager], 200)).await;
        if uri == "/deliverypages" {
            for (who, answer) in read.iter().filter(|(_, answer)| answer.status.is_success()) {
                assert_eq!(answer.body["page"]["totalElements"], 1, "{who:?} counts");
            }
        }
    }
}
