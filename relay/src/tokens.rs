//! Quint's tokens: `qk_` (tenant API key), `qdt_` (deploy token), `qdv_` (device token). Each
//! is the prefix, 30 random base62 characters and a 6-character CRC32 checksum (GitHub's
//! scheme), so scanners, Quint's own redactor included, recognise them with no false positives
//! and a typo is caught before any lookup. Only the SHA-256 of a token is stored.

use quint_policy::redact::checksum::{valid, with_checksum, Checksum};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ApiKey,
    Deploy,
    Device,
}

impl Kind {
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::ApiKey => "qk_",
            Kind::Deploy => "qdt_",
            Kind::Device => "qdv_",
        }
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_CHARS: usize = 30;

/// A new token of `kind` (about 178 bits of randomness).
pub fn generate(kind: Kind) -> String {
    let rng = SystemRandom::new();
    let mut random = String::with_capacity(RANDOM_CHARS);
    let mut byte = [0u8; 1];
    while random.len() < RANDOM_CHARS {
        rng.fill(&mut byte).expect("system randomness");
        // Rejection sampling keeps the characters uniform (248 = 4 × 62).
        if byte[0] < 248 {
            random.push(BASE62[(byte[0] % 62) as usize] as char);
        }
    }
    with_checksum(kind.prefix(), &random)
}

/// Whether `token` is a well-formed token of `kind` (prefix, length, checksum).
pub fn well_formed(kind: Kind, token: &str) -> bool {
    token.len() == kind.prefix().len() + RANDOM_CHARS + 6
        && token.starts_with(kind.prefix())
        && valid(Checksum::Github, token)
}

/// What is stored and looked up: SHA-256 of the token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_checksummed_and_distinct() {
        for kind in [Kind::ApiKey, Kind::Deploy, Kind::Device] {
            let a = generate(kind);
            let b = generate(kind);
            assert_ne!(a, b);
            assert!(well_formed(kind, &a), "{a}");
            let mut typo = a.clone().into_bytes();
            let at = kind.prefix().len() + 3;
            typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
            assert!(!well_formed(kind, &String::from_utf8(typo).unwrap()));
        }
        assert!(!well_formed(Kind::Device, &generate(Kind::ApiKey)));
    }

    #[test]
    fn the_redactor_recognises_every_kind() {
        let redactor = quint_policy::redact::Redactor::builtin(b"k").unwrap();
        for kind in [Kind::ApiKey, Kind::Deploy, Kind::Device] {
            let token = generate(kind);
            let found = redactor.find(&format!("Authorization: Bearer {token}"));
            assert!(
                found.iter().any(|f| f.rule_id == "quint-token"),
                "{found:?}"
            );
        }
    }
}
