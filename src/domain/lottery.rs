//! The lottery's order (docs/design.md#registration-opening), which anyone can check: a seed
//! of 32 random bytes, committed in advance by its SHA-256 and revealed after the draw; the
//! requests of a draw taken in ascending order of HMAC-SHA256, keyed by the seed, of each
//! request's id as lower-case hyphenated text. Pure: the caller stores and reads.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A new seed, hex, and its SHA-256, hex: what a term keeps until the draw, and what it
/// publishes from the start.
pub fn new_seed() -> (String, String) {
    let seed: [u8; 32] = rand::rng().random();
    (hex(&seed), hex(&Sha256::digest(seed)))
}

/// The hex SHA-256 of a hex seed, as published on the term; `None` for text that is not one.
pub fn seed_hash(seed: &str) -> Option<String> {
    Some(hex(&Sha256::digest(bytes(seed)?)))
}

/// A request's place in its draw under `seed` (hex): the hex HMAC-SHA256 of its id, which
/// sorts as the bytes do. `None` for a seed that is not 32 bytes of hex.
pub fn rank(seed: &str, enrollment_id: Uuid) -> Option<String> {
    let key = bytes(seed)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(enrollment_id.hyphenated().to_string().as_bytes());
    Some(hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32 bytes of a hex seed.
fn bytes(seed: &str) -> Option<[u8; 32]> {
    if seed.len() != 64 || !seed.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Python's `hmac` and `hashlib` computed these for the seed 00 01 … 1f.
    #[test]
    fn the_order_is_what_any_hmac_library_computes() {
        let seed = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        assert_eq!(
            seed_hash(seed).unwrap(),
            "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
        );
        let id: Uuid = "01890A5D-AC96-774B-BCCE-B302099A8057".parse().unwrap();
        assert_eq!(
            rank(seed, id).unwrap(),
            "0b0021aa788332b76bbafc26d460af12e5be4e70fbaf4766bac72ad4f6ad28a9"
        );
    }

    #[test]
    fn a_new_seed_is_published_by_its_hash() {
        let (seed, hash) = new_seed();
        assert_eq!(seed.len(), 64);
        assert_eq!(seed_hash(&seed).unwrap(), hash);
        assert_ne!(new_seed().0, seed);
        assert_eq!(rank("not hex", Uuid::nil()), None);
        assert_eq!(seed_hash(&"zz".repeat(32)), None);
    }
}
