use platform::testing::TestService;

/// A fresh customer center, answering as `customercenter:8084`.
pub async fn spawn_app() -> TestService {
    TestService::start(customercenter::NAME, "customercenter:8084", customercenter::MIGRATIONS, customercenter::start)
        .await
}
