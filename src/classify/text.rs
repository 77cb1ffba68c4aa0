//! Text helpers (STUB: to be implemented).

/// HTML reduced to readable text.
pub fn html_to_text(html: &str) -> String {
    html.to_string()
}
