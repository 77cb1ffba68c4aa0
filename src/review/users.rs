//! Staff accounts: name rules and password hashing (argon2id, the OWASP-recommended
//! parameters of the `argon2` crate's default), shared by `trialdesk users` and the sign-in
//! page.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::store::{NewAudit, Store, StoreError, Via};

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work per attempt).
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Account names: lower-case letters, digits, `.`, `_`, `-`, `@`; 1–64 characters. Input is
/// lower-cased first, so sign-in is case-insensitive.
pub fn normalize_name(name: &str) -> Result<String, UserError> {
    let n = name.trim().to_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c));
    if ok {
        Ok(n)
    } else {
        Err(UserError::Invalid(format!(
            "bad user name {name:?}: use 1-64 of a-z, 0-9, '.', '_', '-', '@'"
        )))
    }
}

pub fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::Invalid(format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// An argon2id PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UserError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody knows, verified when the account does not exist so that a
/// wrong name takes as long as a wrong password (no account enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 24] = rand::random();
        hash_password(&hex::encode(random)).unwrap_or_default()
    })
}

/// Audits an account change made by `actor` from the command line.
async fn audit_account(
    store: &Store,
    actor: &str,
    action: &'static str,
    detail: String,
    now_ms: i64,
) -> Result<(), StoreError> {
    store
        .audit(&NewAudit::unlinked(actor, Via::Cli, action, detail), now_ms)
        .await
}

/// The normalised `name` and the hash of `password`, once both are acceptable.
fn name_and_hash(name: &str, password: &str) -> Result<(String, String), UserError> {
    let name = normalize_name(name)?;
    check_password(password)?;
    Ok((name, hash_password(password)?))
}

/// Creates an account (and audits it).
pub async fn add_user(
    store: &Store,
    name: &str,
    password: &str,
    actor: &str,
    now_ms: i64,
) -> Result<String, UserError> {
    let (name, hash) = name_and_hash(name, password)?;
    store.add_user(&name, &hash, now_ms).await?;
    audit_account(
        store,
        actor,
        "user_add",
        format!("added user {name}"),
        now_ms,
    )
    .await?;
    Ok(name)
}

/// Sets a new password (signing the user out everywhere) and audits it.
pub async fn set_password(
    store: &Store,
    name: &str,
    password: &str,
    actor: &str,
    now_ms: i64,
) -> Result<String, UserError> {
    let (name, hash) = name_and_hash(name, password)?;
    if !store.set_password(&name, &hash, now_ms).await? {
        return Err(UserError::Invalid(format!("no user named {name:?}")));
    }
    audit_account(
        store,
        actor,
        "user_password",
        format!("new password for {name}"),
        now_ms,
    )
    .await?;
    Ok(name)
}

/// Disables or re-enables an account (disabling signs it out) and audits it.
pub async fn set_disabled(
    store: &Store,
    name: &str,
    disabled: bool,
    actor: &str,
    now_ms: i64,
) -> Result<String, UserError> {
    let name = normalize_name(name)?;
    if !store.set_user_disabled(&name, disabled, now_ms).await? {
        return Err(UserError::Invalid(format!("no user named {name:?}")));
    }
    let (action, done) = if disabled {
        ("user_disable", "disabled")
    } else {
        ("user_enable", "enabled")
    };
    audit_account(store, actor, action, format!("{done} {name}"), now_ms).await?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(normalize_name(" Alice ").unwrap(), "alice");
        assert_eq!(normalize_name("a.b-c_d@x").unwrap(), "a.b-c_d@x");
        for bad in ["", "a b", "ä", "<x>", &"a".repeat(65)] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
        assert_ne!(
            hash_password("same password").unwrap(),
            hash_password("same password").unwrap()
        );
    }
}
