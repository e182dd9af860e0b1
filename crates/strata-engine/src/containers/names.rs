//! Container ids and generated names.
//!
//! Ids are 64 random hex digits (32 bytes from the kernel's CSPRNG), as Docker's. A container
//! created without `--name` gets an `adjective_surname` name as Docker's do (the lists are our
//! own: adjectives and people who shaped computing and science), with a digit appended when
//! the first tries collide.

use std::io;

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "curious",
    "daring", "deft", "eager", "earnest", "elated", "epic", "fervent", "fleet", "focused",
    "gentle", "glad", "golden", "graceful", "hardy", "humble", "jolly", "keen", "kind", "lively",
    "lucid", "merry", "mighty", "modest", "nimble", "noble", "patient", "placid", "plucky",
    "proud", "quiet", "quirky", "radiant", "rapid", "serene", "sharp", "silent", "sleek", "smooth",
    "snappy", "solid", "spry", "stoic", "sturdy", "sunny", "swift", "tender", "tidy", "upbeat",
    "vivid", "warm", "wise", "witty", "zealous", "zen",
];

const SURNAMES: &[&str] = &[
    "allen",
    "babbage",
    "backus",
    "bardeen",
    "bell",
    "berners_lee",
    "bohr",
    "boole",
    "brattain",
    "cerf",
    "clarke",
    "codd",
    "conway",
    "curie",
    "dijkstra",
    "einstein",
    "engelbart",
    "euler",
    "faraday",
    "fermi",
    "feynman",
    "franklin",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hoare",
    "jackson",
    "johnson",
    "kahn",
    "kay",
    "knuth",
    "lamarr",
    "lamport",
    "liskov",
    "lovelace",
    "maxwell",
    "mccarthy",
    "meitner",
    "milner",
    "minsky",
    "morse",
    "napier",
    "newton",
    "noether",
    "pascal",
    "perlman",
    "pike",
    "ramanujan",
    "ritchie",
    "shannon",
    "sinofsky",
    "stallman",
    "sutherland",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wilkes",
    "wing",
    "wirth",
    "wozniak",
    "yonath",
];

/// 64 random lower-case hex digits.
pub fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        filled +=
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A generated name derived from `seed` (random bytes); `attempt` > 0 appends it as Docker
/// does after a collision.
pub fn generated_name(seed: &str, attempt: u32) -> String {
    let n = u64::from_str_radix(seed.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    let adjective = ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize];
    let surname = SURNAMES[((n >> 32) % SURNAMES.len() as u64) as usize];
    if attempt == 0 {
        format!("{adjective}_{surname}")
    } else {
        format!("{adjective}_{surname}{attempt}")
    }
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn generated_names_are_valid_and_retries_differ() {
        let id = new_id().unwrap();
        let first = generated_name(&id, 0);
        assert!(valid_name(&first), "{first}");
        assert!(first.contains('_'));
        assert_eq!(generated_name(&id, 3), format!("{first}3"));
    }

    #[test]
    fn docker_name_rule() {
        for ok in ["web", "my_container_1", "a.b-c", "9lives"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "_web", "-x", "web/1", "we b", ".hidden"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
