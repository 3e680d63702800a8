//! Passwords, for deployments that turn password login on (it is off by default):
//! Argon2id hashes, a policy for new passwords, and lockout after repeated failures.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Failed attempts allowed within [`LOCKOUT_WINDOW_SECS`] before a user or an address is
/// locked out for the rest of the window.
pub const MAX_FAILURES: i64 = 5;
pub const LOCKOUT_WINDOW_SECS: i64 = 15 * 60;

/// Passwords refused whatever else they satisfy (the most common ones, and variants that
/// pass the class rules).
const FORBIDDEN: &[&str] = &[
    "password",
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword1",
    "123456789012",
    "qwerty123456",
    "qwertyuiop",
    "iloveyou",
    "letmein",
    "welcome",
    "welcome1",
    "admin123",
    "administrator",
    "changeme",
    "trustno1",
    "football",
    "baseball",
    "dragon",
    "monkey",
    "sunshine",
    "princess",
    "superman",
    "starwars",
    "whatever",
    "correcthorsebatterystaple",
    "p@ssw0rd123",
    "welcome123!",
    "admin@123",
];

/// Why a new password is refused: which rule of the policy it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("a password needs at least 12 characters (this one has {0})")]
    TooShort(usize),
    #[error("a password may have at most 1024 characters")]
    TooLong,
    #[error("a password needs three of: lowercase, uppercase, digits, symbols")]
    TooFewClasses,
    #[error("that password is on the list of common passwords")]
    Common,
    #[error("a password must not contain the user name")]
    ContainsUserName,
}

/// Checks a new password against the policy: at least 12 characters, at most 1024, three
/// of four character classes, not a common password, not containing the user name.
pub fn check_policy(user: &str, password: &str) -> Result<(), PolicyError> {
    let n = password.chars().count();
    if n < 12 {
        return Err(PolicyError::TooShort(n));
    }
    if n > 1024 {
        return Err(PolicyError::TooLong);
    }
    let classes = [
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|&&b| b).count() < 3 {
        return Err(PolicyError::TooFewClasses);
    }
    let lower = password.to_lowercase();
    if FORBIDDEN
        .iter()
        .any(|f| lower == *f || lower.trim_end_matches(|c: char| !c.is_alphanumeric()) == *f)
    {
        return Err(PolicyError::Common);
    }
    if !user.is_empty() && lower.contains(&user.to_lowercase()) {
        return Err(PolicyError::ContainsUserName);
    }
    Ok(())
}

/// Why a password could not be hashed (the host's failure, never the password's).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The kernel gave no random bytes for the salt.
    #[error("generating a salt: {0}")]
    Salt(#[source] std::io::Error),
    /// Argon2 refused the salt or its parameters.
    #[error("hashing a password with Argon2: {0}")]
    Argon2(#[source] argon2::password_hash::Error),
}

/// An Argon2id hash (PHC string) with a fresh random salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    let salt = crate::secrets::random_bytes(16).map_err(HashError::Salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(HashError::Argon2)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(HashError::Argon2)
}

/// Whether `password` matches `phc` (constant time inside argon2).
pub fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password with the parameters real hashes use, made once.
fn dummy() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = crate::secrets::random_bytes(24)
            .map(|b| crate::secrets::hex(&b))
            .unwrap_or_else(|_| "dummy".into());
        hash(&random).unwrap_or_default()
    })
}

/// Makes the dummy hash now, so that the first login for an unknown user does not take
/// twice as long (which would tell that the user is unknown).
pub fn warm() {
    dummy();
}

/// Whether `password` matches `phc`; without a hash (no such user, no password, locked
/// out) it is checked against a dummy hash and refused, so that every answer costs one
/// Argon2 verification and takes the same time.
pub fn verify_or_dummy(phc: Option<&str>, password: &str) -> bool {
    match phc {
        Some(h) => verify(h, password),
        None => {
            let _ = verify(dummy(), password);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_simple_common_and_named_passwords() {
        assert!(check_policy("alice", "Short1!").is_err());
        assert!(check_policy("alice", "alllowercaseletters").is_err());
        assert!(
            check_policy("alice", "Password123!").is_err()
                || check_policy("alice", "P@ssw0rd123").is_err()
        );
        assert!(check_policy("alice", "alice-Is-Great-42").is_err());
        assert!(check_policy("alice", "Tr0mbone-Garden-Lamp").is_ok());
    }

    #[test]
    fn hashes_verify_only_the_right_password() {
        let h = hash("Tr0mbone-Garden-Lamp").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "Tr0mbone-Garden-Lamp"));
        assert!(!verify(&h, "Tr0mbone-Garden-Lamp!"));
        assert!(!verify("garbage", "x"));
    }

    #[test]
    fn without_a_hash_the_answer_is_no_after_the_same_work() {
        let h = hash("Tr0mbone-Garden-Lamp").unwrap();
        assert!(verify_or_dummy(Some(&h), "Tr0mbone-Garden-Lamp"));
        assert!(!verify_or_dummy(None, "Tr0mbone-Garden-Lamp"));
        // The dummy is a real Argon2id hash with the same parameters, not a shortcut.
        assert!(
            dummy().starts_with("$argon2id$") && dummy().split('$').nth(3) == h.split('$').nth(3),
            "{}",
            dummy()
        );
    }
}
