//! A consistent view of the local store's committed bytes for one push.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use mmblob_engine::DataStore;
use mmblob_entry::format::{HEADER_LEN, Header, TRAILER_LEN};

use crate::error::{RemoteError, Result};

/// The store file of one generation, opened by path, and its committed end.
pub struct Source {
    /// The file (the one holding `store_id` in its header).
    pub file: File,
    /// Its path.
    pub path: PathBuf,
    /// Its store id.
    pub store_id: u64,
    /// End of its last committed entry; bytes past it are never read.
    pub end: u64,
}

impl Source {
    /// Takes the store's id and committed end, then opens its file and checks
    /// the header carries that id. A compaction between the two steps (a new
    /// file with a new id) is retried.
    pub fn snapshot(store: &DataStore) -> Result<Source> {
        let path = store.path().to_path_buf();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (store_id, end) = store.store_id_and_end();
            let file =
                File::open(&path).map_err(|e| RemoteError::io("opening", path.clone(), e))?;
            if store_id == 0 {
                return Ok(Source {
                    file,
                    path,
                    store_id,
                    end,
                });
            }
            let mut bytes = [0u8; HEADER_LEN as usize];
            file.read_exact_at(&mut bytes, 0)
                .map_err(|e| RemoteError::io("reading the header of", path.clone(), e))?;
            let header_id = Header::decode(&bytes).map(|h| h.store_id).ok();
            if header_id == Some(store_id) {
                // The file of this id only ever grows past `end`.
                return Ok(Source {
                    file,
                    path,
                    store_id,
                    end,
                });
            }
            if attempts >= 5 {
                return Err(RemoteError::Local(mmblob_engine::Error::Corrupt {
                    offset: 0,
                    reason: format!(
                        "the file at {} does not carry the open store's id {store_id:016x}",
                        path.display()
                    ),
                }));
            }
            // A compaction renamed a new file into place: the store
            // follows it (refresh is a no-op for a writer).
            store.refresh()?;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Reads bytes `offset..offset + buf.len()` of the file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| RemoteError::io("reading", self.path.clone(), e))
    }

    /// The 32 trailer bytes before `end` as hex (empty for the header's end).
    pub fn trailer_hex(&self, end: u64) -> Result<String> {
        if end < HEADER_LEN + TRAILER_LEN {
            return Ok(String::new());
        }
        let mut raw = [0u8; TRAILER_LEN as usize];
        self.read_at(&mut raw, end - TRAILER_LEN)?;
        Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
    }
}
