//! The manifest: the one object a push replaces, and the only thing readers trust.
//!
//! It is JSON, wrapped with an xxh3-64 checksum of the exact bytes of its
//! body, so a damaged or truncated manifest is detected instead of read:
//!
//! ```json
//! {"format":"mmblob-remote-manifest","version":1,"xxh3":"…","body":{…}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Value of the `format` field.
const FORMAT: &str = "mmblob-remote-manifest";
/// Version of the manifest layout this build writes and reads.
pub const VERSION: u32 = 1;
/// How many earlier store ids a manifest remembers (for telling a replica of
/// an older generation from an unrelated store).
pub const LINEAGE_LIMIT: usize = 256;

/// What a manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Store id of the current generation, 16 hex digits.
    pub store_id: String,
    /// End of the bytes the segments hold: a committed entry boundary.
    pub end: u64,
    /// The 32 trailer bytes just before `end` (hex), empty when `end` is the
    /// header's end: a pusher checks that its file still holds them.
    pub tail_trailer: String,
    /// The segments, in file order, covering `0..end` without gaps.
    pub segments: Vec<Segment>,
    /// Older generations whose objects are still kept (newest first).
    pub retained: Vec<Generation>,
    /// Ids of all earlier generations (newest first, at most
    /// [`LINEAGE_LIMIT`]), retained or not.
    pub lineage: Vec<String>,
    /// When the manifest was written, milliseconds since the Unix epoch.
    pub pushed_at_ms: u64,
}

/// One segment object: bytes `start..end` of the store file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Object name inside the generation directory.
    pub object: String,
    /// xxh3-64 of the bytes, 16 hex digits.
    pub xxh3: String,
}

/// An older generation still stored under the prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// Its store id, 16 hex digits.
    pub store_id: String,
    /// Its end when it was replaced.
    pub end: u64,
    /// Its segments.
    pub segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    format: String,
    version: u32,
    xxh3: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Parses a store id written as 16 hex digits.
pub fn parse_id(hex: &str) -> Option<u64> {
    crate::layout::parse_generation_name(hex)
}

/// Hex of a 64-bit checksum.
pub fn hex64(value: u64) -> String {
    format!("{value:016x}")
}

impl Manifest {
    /// The current generation's store id.
    pub fn id(&self) -> Result<u64, String> {
        parse_id(&self.store_id).ok_or_else(|| format!("bad store id {:?}", self.store_id))
    }

    /// Encodes the manifest with its checksum.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        let body = serde_json::to_string(self).unwrap_or_default();
        let sum = hex64(xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
        format!(
            "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"xxh3\":\"{sum}\",\"body\":{body}}}\n"
        )
        .into_bytes()
    }

    /// Decodes and checks a manifest; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, String> {
        let envelope: EnvelopeIn<'_> =
            serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if envelope.format != FORMAT {
            return Err(format!("format {:?}, expected {FORMAT:?}", envelope.format));
        }
        if envelope.version != VERSION {
            return Err(format!(
                "manifest version {}, this build reads version {VERSION}",
                envelope.version
            ));
        }
        let actual = hex64(xxhash_rust::xxh3::xxh3_64(envelope.body.get().as_bytes()));
        if actual != envelope.xxh3 {
            return Err(format!(
                "checksum {actual} does not match the recorded {}",
                envelope.xxh3
            ));
        }
        let manifest: Manifest =
            serde_json::from_str(envelope.body.get()).map_err(|e| format!("manifest body: {e}"))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Structural checks: segments contiguous from 0 to `end`.
    fn check(&self) -> Result<(), String> {
        self.id()?;
        let mut at = 0;
        for segment in &self.segments {
            if segment.start != at || segment.end <= segment.start {
                return Err(format!(
                    "segment {}..{} does not continue at {at}",
                    segment.start, segment.end
                ));
            }
            if parse_id(&segment.xxh3).is_none() && segment.xxh3 != "0000000000000000" {
                return Err(format!("bad checksum {:?}", segment.xxh3));
            }
            at = segment.end;
        }
        if at != self.end {
            return Err(format!("segments end at {at}, manifest at {}", self.end));
        }
        Ok(())
    }

    /// True when `store_id` is the current generation or an earlier one.
    pub fn knows(&self, store_id: u64) -> bool {
        let hex = crate::layout::generation_name(store_id);
        self.store_id == hex || self.lineage.contains(&hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            store_id: hex64(7),
            end: 128,
            tail_trailer: String::new(),
            segments: vec![
                Segment {
                    start: 0,
                    end: 64,
                    object: "a".into(),
                    xxh3: hex64(1),
                },
                Segment {
                    start: 64,
                    end: 128,
                    object: "b".into(),
                    xxh3: hex64(2),
                },
            ],
            retained: vec![],
            lineage: vec![hex64(3)],
            pushed_at_ms: 5,
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()), Ok(m.clone()));
        assert!(m.knows(7) && m.knows(3) && !m.knows(4));
    }

    #[test]
    fn any_flipped_byte_of_the_body_is_detected() {
        let bytes = sample().encode();
        let body_at = bytes.windows(6).position(|w| w == b"\"body\"").unwrap();
        for i in body_at + 8..bytes.len() - 2 {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(Manifest::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn gaps_are_refused() {
        let mut m = sample();
        m.segments[1].start = 65;
        assert!(Manifest::decode(&m.encode()).is_err());
        let mut m = sample();
        m.end = 200;
        assert!(Manifest::decode(&m.encode()).is_err());
    }
}
