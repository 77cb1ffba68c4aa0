//! Quoted history detection (STUB: to be implemented).

/// The fresh part of a reply: text before quoted history.
pub fn fresh_part(text: &str) -> String {
    text.to_string()
}
