//! A deterministic fuzz run: mutated and random bytes through every kind of
//! decoder must never panic, and whatever decodes must re-encode to itself.

use super::*;

/// xorshift64*: a tiny deterministic generator for the fuzz test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Decodes `bytes` until it runs dry or fails; every packet that decodes
/// must survive encode -> decode unchanged. Returns how many decoded.
fn decode_all(mut d: Decoder, bytes: &[u8]) -> usize {
    let mut buf = BytesMut::from(bytes);
    let mut decoded = 0;
    loop {
        let before = d.clone();
        match d.decode(&mut buf) {
            Ok(Some(packet)) => {
                let version = match &packet {
                    Packet::Connect(c) => c.protocol,
                    _ => d.version().expect("decoded without a version"),
                };
                let mut again = encoded(&packet, version);
                let mut before = before;
                assert_eq!(before.decode(&mut again), Ok(Some(packet)));
                decoded += 1;
            }
            Ok(None) | Err(_) => return decoded,
        }
    }
}

#[test]
fn fuzzed_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    let mut corpus = Vec::new();
    for version in VERSIONS {
        let mut server_side = Vec::new();
        for p in client_packets(version) {
            server_side.extend_from_slice(&encoded(&p, version));
        }
        corpus.push((Side::Fresh, server_side));
        let mut client_side = Vec::new();
        for p in server_packets(version) {
            client_side.extend_from_slice(&encoded(&p, version));
        }
        corpus.push((Side::Client(version), client_side));
    }
    for _ in 0..4000 {
        let (side, seed) = &corpus[rng.below(corpus.len())];
        let mut bytes = seed.clone();
        for _ in 0..1 + rng.below(8) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(5) {
                0 => bytes[at] = rng.next() as u8,
                1 => bytes[at] ^= 1 << rng.below(8),
                2 => bytes.insert(at, rng.next() as u8),
                3 => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at.max(1)),
            }
        }
        let d = match side {
            Side::Client(v) => {
                let mut d = Decoder::new_client(1 << 16);
                d.set_version(*v);
                d
            }
            _ => Decoder::new(1 << 16),
        };
        decoded += decode_all(d, &bytes);
    }
    for _ in 0..2000 {
        let len = rng.below(64);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Mostly a plausible first byte after a valid CONNECT.
        if let Some(b) = bytes.first_mut() {
            *b = (*b & 0xf0) | if rng.below(2) == 0 { 0 } else { *b & 0x0f };
        }
        let version = VERSIONS[rng.below(3)];
        decoded += decode_all(server(version), &bytes);
        decoded += decode_all(client(version), &bytes);
        decoded += decode_all(Decoder::new(1 << 16), &bytes);
    }
    // Mutations leave a good part of each stream decodable: the fuzzing
    // reaches past the first packet.
    assert!(decoded > 5_000, "only {decoded} packets decoded");
}
