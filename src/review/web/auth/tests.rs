//! Unit tests of `review::web::auth`: local redirect paths, cookies, CSRF matching. Moved
//! out of `auth.rs` to keep that file one concept.

use super::*;

#[test]
fn only_local_paths_are_followed_after_sign_in() {
    assert_eq!(local_path(Some("/items/3?x=1")), "/items/3?x=1");
    for bad in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil",
        "",
        "/queue\r\nSet-Cookie: x=1",
        "/ä",
    ] {
        assert_eq!(local_path(Some(bad)), "/queue", "{bad}");
    }
    assert_eq!(local_path(None), "/queue");
}

#[test]
fn cookies_are_found_by_name() {
    let mut h = HeaderMap::new();
    h.insert(
        header::COOKIE,
        HeaderValue::from_static("a=1; td_session=abc; b=2"),
    );
    assert_eq!(cookie(&h, "td_session"), Some("abc"));
    assert_eq!(cookie(&h, "td"), None);
}

#[test]
fn csrf_needs_an_exact_non_empty_match() {
    assert!(csrf_matches(Some("abc"), "abc"));
    assert!(!csrf_matches(Some("abd"), "abc"));
    assert!(!csrf_matches(None, "abc"));
    assert!(!csrf_matches(Some(""), ""));
}
