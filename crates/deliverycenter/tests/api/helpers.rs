use platform::testing::TestService;

/// A fresh delivery center, answering as `deliverycenter:8086`.
pub async fn spawn_app() -> TestService {
    TestService::start(deliverycenter::NAME, "deliverycenter:8086", deliverycenter::MIGRATIONS, deliverycenter::start)
        .await
}
