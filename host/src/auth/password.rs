//! Password hashing for `[[user]]` entries: argon2id PHC strings.
//!
//! Verification is deliberately slow (that is argon2's point): callers run
//! it off the async runtime's worker threads.

use std::io::Read;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read random bytes for the salt from /dev/urandom: {0}")]
    Random(#[from] std::io::Error),
    #[error("argon2: {0}")]
    Argon2(argon2::password_hash::Error),
}

/// Hashes a password into an argon2id PHC string for the config file.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    let mut random = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let salt = SaltString::encode_b64(&random).map_err(HashError::Argon2)?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(HashError::Argon2)
}

/// True when `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &[u8]) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = hash_password(b"s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, b"s3cret"));
        assert!(!verify_password(&hash, b"s3cret "));
        assert!(!verify_password("not a hash", b"s3cret"));
    }
}
