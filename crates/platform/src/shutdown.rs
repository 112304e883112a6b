//! Waits that give way to shutdown. Every server, relay, consumer and background loop holds
//! a clone of one `CancellationToken` (see [`crate::ctx::Ctx`]); a loop that pauses between
//! passes pauses here, so cancelling the token ends the pause at once instead of after it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps for `d`, or returns `true` at once if `cancel` is (or becomes) cancelled.
pub async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
