//! Password hashing for `[[user]]` entries: argon2id PHC strings.
//!
//! Verification is deliberately slow and memory-hard (that is argon2's
//! point: ~19 MiB and tens of milliseconds per check with the default
//! parameters). [`Verifier`] runs every check on one dedicated thread, so a
//! burst of connects with passwords costs a queue, not a thread and 19 MiB
//! each.

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

/// Checks passwords on a dedicated thread, one at a time.
#[derive(Debug, Clone)]
pub struct Verifier {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

struct Job {
    hash: String,
    password: Vec<u8>,
    answer: tokio::sync::oneshot::Sender<bool>,
}

/// Checks waiting beyond this make their connects wait for a place.
const QUEUE: usize = 64;

impl Verifier {
    /// Starts the verifying thread; it ends when the last `Verifier` clone
    /// is dropped.
    pub fn start() -> Verifier {
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("firehose-passwords".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    let ok = verify_password(&job.hash, &job.password);
                    let _ = job.answer.send(ok);
                }
            })
            .expect("cannot start the password verification thread");
        Verifier { jobs }
    }

    /// True when `password` matches the PHC string `hash`.
    pub async fn verify(&self, hash: String, password: Vec<u8>) -> bool {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Job {
            hash,
            password,
            answer,
        };
        if self.jobs.send(job).await.is_err() {
            return false;
        }
        answered.await.unwrap_or(false)
    }
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

    #[tokio::test]
    async fn the_verifier_thread_answers_each_check() {
        let hash = hash_password(b"pw").unwrap();
        let verifier = Verifier::start();
        assert!(verifier.verify(hash.clone(), b"pw".to_vec()).await);
        assert!(!verifier.verify(hash, b"px".to_vec()).await);
    }

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = hash_password(b"s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, b"s3cret"));
        assert!(!verify_password(&hash, b"s3cret "));
        assert!(!verify_password("not a hash", b"s3cret"));
    }
}
