use axum::Router;
use platform::testing::TestService;

/// A fresh delivery center, answering as `deliverycenter:8086`, auth off.
pub async fn spawn_app() -> TestService {
    spawn_behind(platform::testing::signed::open).await
}

/// The same, its router wrapped in `guard` (which decides who is calling).
pub async fn spawn_behind(guard: impl FnOnce(Router) -> Router) -> TestService {
    let start = |ctx| guard(deliverycenter::start(ctx));
    TestService::start(deliverycenter::NAME, "deliverycenter:8086", deliverycenter::MIGRATIONS, start).await
}
