//! SPEC §9 for the customer center, with real signed tokens: customers read their own rows
//! only, managers every row, no one else any.

use axum::http::Method;
use customercenter::events::UpdateMyPage;
use platform::testing::signed::{expect, Signed, Who};

use crate::helpers::spawn_behind;
use crate::mypages::happy_path;
use Who::*;

const ANN: &str = "01011112222";
const BOB: &str = "01033334444";

#[tokio::test]
async fn a_customer_reads_only_their_own_rows_and_a_manager_every_row() {
    let signed = Signed::new();
    let app = spawn_behind(|router| signed.guard(router)).await;
    let mut events = happy_path(1, ANN);
    events.extend(happy_path(2, BOB));
    app.consume(&UpdateMyPage, &events).await;

    // A customer's own number may be given with hyphens.
    let searches = [
        "/mypages",
        "/mypages/search/findByPhoneNumber?phoneNumber=010-1111-2222",
        "/mypages/search/findByPhoneNumber?phoneNumber=01033334444",
    ];
    let reads = [
        "/mypages/1",
        "/mypages/2",
        "/mypages/search/findByOrderId?orderId=1",
        "/mypages/search/findByOrderId?orderId=2",
    ];
    // who; the status of every search and every read; the orders each search shows.
    for (who, searched, read, shown) in [
        (Anonymous, 401, [401; 4], [vec![], vec![], vec![]]),
        (Customer(ANN), 200, [200, 404, 200, 404], [vec![1], vec![1], vec![]]),
        (Customer(BOB), 200, [404, 200, 404, 200], [vec![2], vec![], vec![2]]),
        (Barista, 403, [403; 4], [vec![], vec![], vec![]]),
        (Rider, 403, [403; 4], [vec![], vec![], vec![]]),
        (Manager, 200, [200; 4], [vec![1, 2], vec![1], vec![2]]),
        (Service, 403, [403; 4], [vec![], vec![], vec![]]),
    ] {
        for (uri, shown) in searches.iter().zip(shown) {
            let page = signed.send(&app, who, Method::GET, uri, None).await;
            expect(&page, searched, &format!("{who:?} searches {uri}"));
            assert_eq!(page.listed("mypages", "orderId"), shown, "{who:?} searches {uri}");
            if searched == 200 {
                assert_eq!(page.body["page"]["totalElements"], shown.len(), "{who:?} counts {uri}");
            }
        }
        for (uri, status) in reads.iter().zip(read) {
            expect(&signed.send(&app, who, Method::GET, uri, None).await, status, &format!("{who:?} reads {uri}"));
        }
    }
}
