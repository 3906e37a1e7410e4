//! Secrets at rest (a device's UnlockToken, the push certificate's key):
//! AES-256-GCM under a key kept in the data directory, not in the database,
//! so that a database dump alone does not reveal them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flotte_core::CoreError;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "v1:";

pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32-byte key fits AES-256");
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<String, CoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| CoreError::Invalid("no randomness for sealing".into()))?;
        let mut buffer = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buffer,
            )
            .map_err(|_| CoreError::Invalid("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CoreError> {
        let bad = || {
            CoreError::Invalid(
                "a sealed secret cannot be opened with this data directory's key".into(),
            )
        };
        let raw = STANDARD
            .decode(sealed.strip_prefix(PREFIX).ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| bad())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let sealer = Sealer::new(&[7u8; 32]);
        let sealed = sealer.seal(b"unlock token").unwrap();
        assert!(!sealed.contains("unlock"));
        assert_eq!(sealer.open(&sealed).unwrap(), b"unlock token");
        assert_ne!(
            sealer.seal(b"unlock token").unwrap(),
            sealed,
            "fresh nonce each time"
        );
        assert!(Sealer::new(&[8u8; 32]).open(&sealed).is_err());
        assert!(sealer.open("v1:AAAA").is_err());
    }
}
