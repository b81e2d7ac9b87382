//! `<herald-inbox>`: the bell a host application embeds in its own pages, on its own origin
//! (`assets/herald-inbox.js`, served at [`EMBED_SCRIPT_PATH`]). It is a custom element in
//! plain JavaScript with a shadow root of its own, so the host's styles neither break it nor
//! are broken by it: a button with the unread count in its accessible name, and a drop-down of
//! the newest notifications, each with a button to mark it read, plus "Mark all read" and a
//! link to `/inbox`. Escape closes the drop-down and gives the focus back to the bell.
//!
//! ```html
//! <script src="https://herald.example.com/assets/herald-inbox.js" defer></script>
//! <herald-inbox herald-url="https://herald.example.com" token="…"></herald-inbox>
//! ```
//!
//! How it signs in. The web pages' session cookie is SameSite=Strict, so a browser never sends
//! it from another site's page; and a cookie that did would let any page of that site act as
//! the user. The element therefore carries the user's API token (the `token` attribute, or the
//! `token` property, which keeps it out of the DOM), and sends it as `Authorization: Bearer`
//! on every call: the inbox routes of the API, answered to the origins listed in
//! `--web-allowed-origins` ([`crate::cors`]). The host mints the token for the user on its
//! server (`POST /api/v2/users/{id}/tokens`, as an owner) and renders it into that user's page
//! only; revoking it ends the bell's live stream too.
//!
//! The live part reads `GET /api/v2/notifications/inbox/watch` as Server-Sent Events through
//! `fetch` and its streaming body rather than `EventSource`, which cannot send headers and
//! would need the token in the URL, where access logs keep it. When the stream ends the
//! element reconnects after a growing pause and reloads the list, so nothing sent meanwhile is
//! missed; a 401 stops it and says so.

use axum::Router;
use axum::routing::get;

use super::asset;
use crate::State;
use crate::cors::EMBED_SCRIPT_PATH;

/// The bell's route: its script.
pub(crate) fn add(router: Router<State>) -> Router<State> {
    router.route(EMBED_SCRIPT_PATH, get(script))
}

async fn script() -> axum::response::Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/herald-inbox.js"),
    )
}
