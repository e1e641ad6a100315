//! The web console: a page at `/` that uploads, watches and browses images through the same API
//! any client uses. Its files are compiled into the binary (no CDN, no Node at run time) and
//! served with a strict Content-Security-Policy: scripts and styles only from this origin, no
//! inline code, no frames, no forms posting elsewhere. Images and API calls may also go to
//! `https:` origins, where S3's presigned URLs point on AWS.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_FRAME_OPTIONS};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The console's policy: everything from this origin, nothing inline, nothing framed.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: https:; connect-src 'self' https:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// One embedded file of the console.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("../console/index.html") },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../console/app.js"),
    },
    Asset {
        path: "/console/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../console/app.css"),
    },
    Asset { path: "/console/icon.svg", content_type: "image/svg+xml", body: include_str!("../console/icon.svg") },
];

/// The console's routes: `/` and its files under `/console/`, open (the page asks for the API
/// key itself and keeps it for the tab).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| router.route(asset.path, get(move || serve(asset))))
}

async fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("permissions-policy", HeaderValue::from_static("camera=(), microphone=(), geolocation=()"));
    // Revalidate each time: a new binary serves new files at the same paths.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_this_router_serves_and_nothing_inline() {
        let page = ASSETS[0].body;
        for reference in page.split(['"', '\'']).filter(|s| s.starts_with("/console/")) {
            assert!(ASSETS.iter().any(|a| a.path == reference), "{reference} is not served");
        }
        // The policy forbids inline code: the page must not need any.
        let handler = page.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!page.contains("<script>") && !handler && !page.contains("style="), "inline code in the page");
        assert!(!ASSETS[1].body.contains("innerHTML"), "markup from strings: use textContent");
    }
}
