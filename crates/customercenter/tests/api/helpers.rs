use axum::Router;
use platform::testing::TestService;

/// A fresh customer center, answering as `customercenter:8084`, auth off.
pub async fn spawn_app() -> TestService {
    spawn_behind(platform::testing::signed::open).await
}

/// The same, its router wrapped in `guard` (which decides who is calling).
pub async fn spawn_behind(guard: impl FnOnce(Router) -> Router) -> TestService {
    let start = |ctx| guard(customercenter::start(ctx));
    TestService::start(customercenter::NAME, "customercenter:8084", customercenter::MIGRATIONS, start).await
}
