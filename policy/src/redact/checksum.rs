//! Provider checksums that tell a real token from a random string of the same shape.

/// How a rule validates a candidate secret beyond its regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    #[default]
    None,
    /// GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`): the last 6 characters are the
    /// base62 CRC32 of the 30 random characters before them.
    Github,
    /// npm tokens (`npm_`): the same scheme as GitHub.
    Npm,
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62_6(mut value: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Whether `secret` passes the checksum (`None` always passes).
pub fn valid(checksum: Checksum, secret: &str) -> bool {
    match checksum {
        Checksum::None => true,
        Checksum::Github | Checksum::Npm => {
            let Some((_, body)) = secret.split_once('_') else {
                return false;
            };
            if body.len() < 7 || !body.is_ascii() {
                return false;
            }
            let (random, check) = body.split_at(body.len() - 6);
            base62_6(crc32fast::hash(random.as_bytes())) == check.as_bytes()
        }
    }
}

/// Makes a token with a valid checksum (tests and synthetic corpora).
pub fn with_checksum(prefix: &str, random: &str) -> String {
    let check = base62_6(crc32fast::hash(random.as_bytes()));
    format!("{prefix}{random}{}", String::from_utf8_lossy(&check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_checksum_round_trips_and_rejects_a_typo() {
        let token = with_checksum("ghp_", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1");
        assert!(valid(Checksum::Github, &token));
        let mut typo = token.clone().into_bytes();
        typo[10] = if typo[10] == b'x' { b'y' } else { b'x' };
        assert!(!valid(Checksum::Github, &String::from_utf8(typo).unwrap()));
        assert!(valid(Checksum::None, "anything"));
    }
}
