//! Checking downloaded bytes entry by entry before they become visible.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use mmblob_entry::checksum::{EntryCrc, key_hash};
use mmblob_entry::format::{HEADER_LEN, Header, TRAILER_LEN, Trailer};

use crate::error::{RemoteError, Result};

/// Entries up to this size are read with one call.
const CHUNK: u64 = 1 << 20;

/// Checks the header of a downloaded store file: magic, version and store id.
pub fn check_header(file: &File, path: &Path, store_id: u64) -> Result<()> {
    let mut bytes = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| RemoteError::io("reading the header of", path, e))?;
    let header = Header::decode(&bytes).map_err(|e| RemoteError::CorruptEntry {
        offset: HEADER_LEN,
        store_id,
        reason: format!("header: {e:?}"),
    })?;
    if header.store_id != store_id {
        return Err(RemoteError::CorruptEntry {
            offset: HEADER_LEN,
            store_id,
            reason: format!(
                "header names store {:016x}, the manifest {store_id:016x}",
                header.store_id
            ),
        });
    }
    Ok(())
}

/// Walks the entries of `file` backward from `end` to `stop`, checking each
/// entry's structure, key hash and checksum; the chain must land exactly on
/// `stop` (an entry boundary). `base` is the file offset of byte 0 of
/// `file` (a staging file holds only the bytes from `base` on).
///
/// Returns the number of entries checked.
pub fn check_entries(
    file: &File,
    path: &Path,
    base: u64,
    stop: u64,
    end: u64,
    store_id: u64,
) -> Result<u64> {
    let corrupt = |offset: u64, reason: String| RemoteError::CorruptEntry {
        offset,
        store_id,
        reason,
    };
    let read = |buf: &mut [u8], offset: u64| {
        file.read_exact_at(buf, offset - base)
            .map_err(|e| RemoteError::io("reading downloaded bytes of", path, e))
    };
    let mut at = end;
    let mut entries = 0;
    let mut buf = Vec::new();
    while at > stop {
        if at < stop + TRAILER_LEN + 1 || at - TRAILER_LEN < base {
            return Err(corrupt(
                at,
                format!("entry chain does not reach offset {stop}"),
            ));
        }
        let mut raw = [0u8; TRAILER_LEN as usize];
        read(&mut raw, at - TRAILER_LEN)?;
        let trailer = Trailer::decode(&raw);
        let layout = trailer
            .layout(at)
            .ok_or_else(|| corrupt(at, "trailer inconsistent with its position".into()))?;
        if layout.prev_end < stop {
            return Err(corrupt(
                at,
                format!(
                    "previous entry ends at {}, before the range start {stop}",
                    layout.prev_end
                ),
            ));
        }
        let mut crc = EntryCrc::new(store_id);
        let key_len = u64::from(layout.key_len);
        let body_len = layout.payload_len + key_len;
        let body_start = layout.payload_start;
        // Payload and key are contiguous: check them in bounded chunks; the
        // key is hashed from the last chunk(s).
        let mut key = Vec::with_capacity(layout.key_len as usize);
        let mut done = 0;
        while done < body_len {
            let n = (body_len - done).min(CHUNK);
            buf.resize(n as usize, 0);
            read(&mut buf, body_start + done)?;
            crc.update(&buf);
            let chunk_start = body_start + done;
            let chunk_end = chunk_start + n;
            if chunk_end > layout.key_start {
                let from = layout.key_start.max(chunk_start) - chunk_start;
                key.extend_from_slice(&buf[from as usize..]);
            }
            done += n;
        }
        if key_hash(&key) != trailer.key_hash {
            return Err(corrupt(at, "key does not match its hash".into()));
        }
        if crc.finish_with(&trailer) != trailer.crc {
            return Err(corrupt(at, "checksum mismatch".into()));
        }
        // Padding before the payload must be zeros for a well-formed entry,
        // but it carries no data: the checksum covers everything that does.
        entries += 1;
        at = layout.prev_end;
    }
    if at != stop {
        return Err(corrupt(at, format!("entry chain passes offset {stop}")));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flipped_byte_of_an_entry_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.mmblob");
        let store = mmblob_engine::DataStore::open(&path).unwrap();
        store.write(b"first", &[7u8; 100]).unwrap();
        store.write(b"second", b"value").unwrap();
        let (id, end) = store.store_id_and_end();
        drop(store);
        let file = File::open(&path).unwrap();
        check_header(&file, &path, id).unwrap();
        assert_eq!(
            check_entries(&file, &path, 0, HEADER_LEN, end, id).unwrap(),
            2
        );
        assert!(check_entries(&file, &path, 0, HEADER_LEN, end, id ^ 1).is_err());
        let clean = std::fs::read(&path).unwrap();
        // Padding bytes carry no data; every other byte after the header counts.
        let padding = 64 + 100 + 5 + 32..clean.len() - 32 - 6 - 5;
        for i in HEADER_LEN as usize..clean.len() {
            if padding.contains(&i) {
                continue;
            }
            let mut bad = clean.clone();
            bad[i] ^= 0x10;
            let bad_path = dir.path().join("bad.mmblob");
            std::fs::write(&bad_path, &bad).unwrap();
            let file = File::open(&bad_path).unwrap();
            assert!(
                check_entries(&file, &bad_path, 0, HEADER_LEN, end, id).is_err(),
                "flip at {i} accepted"
            );
        }
    }
}
