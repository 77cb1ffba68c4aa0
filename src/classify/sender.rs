//! Sender rules (STUB: to be implemented).

/// The domain part of `local@domain` (no validation beyond one `@` and non-empty parts).
pub fn address_domain(address: &str) -> Option<&str> {
    let (local, domain) = address.trim().rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        None
    } else {
        Some(domain)
    }
}
