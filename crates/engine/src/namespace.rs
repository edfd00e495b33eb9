//! Namespaces: named, isolated key spaces inside one store.
//!
//! A key `k` of namespace `name` is stored under the key
//!
//! ```text
//! NAMESPACE_TAG (8 bytes: FF 00 "mmblns") | len(name) as u8 | name (UTF-8) | k
//! ```
//!
//! and a plain write of a key of exactly that form is refused with
//! [`Error::ReservedKey`]. See `docs/format.md` ("Namespaces") for why this
//! encoding can never equal a plain key or a key of another namespace, and
//! why a store that never uses namespaces is unchanged.

use std::collections::BTreeSet;

use mmblob_entry::EntryHandle;
use mmblob_entry::format::MAX_KEY_LEN;

use crate::error::{Error, Result};
use crate::store::DataStore;

/// First byte of every namespaced key. It never starts a UTF-8 string, so
/// no text key can look namespaced.
pub const NAMESPACE_MARKER: u8 = 0xFF;
/// The eight bytes every namespaced key starts with: [`NAMESPACE_MARKER`],
/// a zero byte and `mmblns`. Only a plain key that starts with all eight is
/// refused, so random binary keys (hashes, ids) meet the reserved form
/// with a probability of 2^-64, not of 1 in a few hundred.
pub const NAMESPACE_TAG: [u8; 8] = [NAMESPACE_MARKER, 0x00, b'm', b'm', b'b', b'l', b'n', b's'];
/// Longest namespace name, in bytes (its length is stored in one byte).
pub const MAX_NAMESPACE_LEN: usize = 255;

/// Checks a namespace name: 1..=255 bytes of UTF-8 without control characters.
///
/// # Errors
/// [`Error::InvalidNamespace`] saying what is wrong.
pub fn check_namespace_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "a namespace name must not be empty".to_owned()
    } else if name.len() > MAX_NAMESPACE_LEN {
        format!(
            "{} bytes long, at most {MAX_NAMESPACE_LEN} bytes are allowed",
            name.len()
        )
    } else if let Some(c) = name.chars().find(|c| c.is_control()) {
        format!("it holds the control character {c:?}; use printable characters")
    } else {
        return Ok(());
    };
    Err(Error::InvalidNamespace {
        name: name.to_owned(),
        reason,
    })
}

/// Splits a stored key into its namespace name and the key inside that
/// namespace, or `None` for a plain key.
///
/// ```
/// use mmblob_engine::namespace::split_key;
/// assert_eq!(split_key(b"\xff\x00mmblns\x05usersalice"), Some(("users", &b"alice"[..])));
/// assert_eq!(split_key(b"\xff\x05usersalice"), None);
/// assert_eq!(split_key(b"plain"), None);
/// ```
#[must_use]
pub fn split_key(stored: &[u8]) -> Option<(&str, &[u8])> {
    let rest = stored.strip_prefix(&NAMESPACE_TAG[..])?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    // The key inside must be non-empty: the name is followed by at least one byte.
    if rest.len() <= len {
        return None;
    }
    let (name, key) = rest.split_at(len);
    let name = std::str::from_utf8(name).ok()?;
    check_namespace_name(name).ok()?;
    Some((name, key))
}

/// The stored form of `key` in namespace `name` (which must be valid).
#[must_use]
pub fn namespaced_key(name: &str, key: &[u8]) -> Vec<u8> {
    let mut out = namespace_prefix(name);
    out.extend_from_slice(key);
    out
}

/// The bytes every stored key of namespace `name` starts with.
fn namespace_prefix(name: &str) -> Vec<u8> {
    debug_assert!(check_namespace_name(name).is_ok());
    let mut out = Vec::with_capacity(NAMESPACE_TAG.len() + 1 + name.len());
    out.extend_from_slice(&NAMESPACE_TAG);
    // At most MAX_NAMESPACE_LEN (255) for a checked name.
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name.as_bytes());
    out
}

/// Refuses a plain key that has the reserved namespaced form.
pub(crate) fn refuse_reserved(key: &[u8]) -> Result<()> {
    match split_key(key) {
        None => Ok(()),
        Some((namespace, _)) => Err(Error::ReservedKey {
            key: key.to_vec(),
            namespace: namespace.to_owned(),
        }),
    }
}

/// A named key space inside a [`DataStore`]; see [`DataStore::namespace`].
///
/// Keys of a namespace never meet plain keys or keys of another namespace.
/// Handles it returns are ordinary [`EntryHandle`]s whose
/// [`key`](EntryHandle::key) is the *stored* key; [`Namespace::key_of`]
/// gives the key inside the namespace. Counting and listing
/// ([`len`](Namespace::len), [`keys`](Namespace::keys), ...) scan the live
/// keys of the whole store: O(live keys).
#[derive(Debug, Clone)]
pub struct Namespace<'s> {
    store: &'s DataStore,
    name: String,
    prefix: Vec<u8>,
}

impl DataStore {
    /// The namespace called `name`. Creating the view writes nothing; the
    /// namespace exists (for [`DataStore::namespaces`]) while it holds a key.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// let users = store.namespace("users")?;
    /// users.write(b"alice", b"1")?;
    /// store.write(b"alice", b"plain")?;
    /// assert_eq!(&*users.read(b"alice")?.unwrap(), b"1");
    /// assert_eq!(store.namespaces()?, ["users"]);
    /// # Ok::<(), mmblob_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidNamespace`] for an empty name, one longer than 255
    /// bytes or one holding a control character.
    pub fn namespace(&self, name: &str) -> Result<Namespace<'_>> {
        check_namespace_name(name)?;
        Ok(Namespace {
            store: self,
            name: name.to_owned(),
            prefix: namespace_prefix(name),
        })
    }

    /// The names of the namespaces that hold at least one live key, sorted.
    /// Scans the live keys (O(live keys)).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for stores that keep a catalog.
    pub fn namespaces(&self) -> Result<Vec<String>> {
        let names: BTreeSet<String> = self
            .keys_with_prefix(&NAMESPACE_TAG)
            .filter_map(|key| split_key(&key).map(|(name, _)| name.to_owned()))
            .collect();
        Ok(names.into_iter().collect())
    }
}

impl<'s> Namespace<'s> {
    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store this namespace lives in.
    #[must_use]
    pub fn store(&self) -> &'s DataStore {
        self.store
    }

    /// The longest key this namespace can hold.
    #[must_use]
    pub fn max_key_len(&self) -> usize {
        MAX_KEY_LEN - self.prefix.len()
    }

    /// The stored form of `key`, after checking its length.
    fn stored(&self, key: &[u8]) -> Result<Vec<u8>> {
        if key.is_empty() || key.len() > self.max_key_len() {
            return Err(Error::InvalidNamespaceKey {
                namespace: self.name.clone(),
                len: key.len(),
                max: self.max_key_len(),
            });
        }
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(key);
        Ok(out)
    }

    /// The key inside this namespace of a stored key of it (as returned by
    /// [`EntryHandle::key`] for handles from this namespace), or `None`
    /// when `stored` belongs elsewhere.
    #[must_use]
    pub fn key_of<'k>(&self, stored: &'k [u8]) -> Option<&'k [u8]> {
        stored
            .strip_prefix(self.prefix.as_slice())
            .filter(|k| !k.is_empty())
    }

    /// [`DataStore::write`] in this namespace.
    ///
    /// # Errors
    /// [`Error::InvalidNamespaceKey`], and as [`DataStore::write`].
    pub fn write(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<u64> {
        let key = key.as_ref();
        let value = value.as_ref();
        self.batch_write(&[(key, value)])
    }

    /// [`DataStore::batch_write`] in this namespace: atomic.
    ///
    /// # Errors
    /// As [`Namespace::write`]; nothing is written if any key is invalid.
    pub fn batch_write(&self, entries: &[(&[u8], &[u8])]) -> Result<u64> {
        let keys = entries
            .iter()
            .map(|(key, _)| self.stored(key))
            .collect::<Result<Vec<_>>>()?;
        let stored: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(entries)
            .map(|(key, (_, value))| (key.as_slice(), *value))
            .collect();
        self.store.batch_write_raw(&stored)
    }

    /// [`DataStore::write_stream`] in this namespace: streams the bytes of
    /// `reader` into the value of `key` without holding them in memory.
    ///
    /// # Errors
    /// [`Error::InvalidNamespaceKey`], and as [`DataStore::write_stream`].
    pub fn write_stream(
        &self,
        key: impl AsRef<[u8]>,
        reader: &mut impl std::io::Read,
    ) -> Result<u64> {
        let key = key.as_ref();
        self.store.write_stream_raw(&self.stored(key)?, reader)
    }

    /// [`DataStore::rename`] in this namespace: moves the value of `old` to
    /// `new` in one atomic step, replacing a value under `new`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] (with the stored key) when `old` does not
    /// exist, [`Error::InvalidNamespaceKey`], and as [`DataStore::rename`].
    pub fn rename(&self, old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Result<()> {
        let old = old.as_ref();
        let new = new.as_ref();
        self.store
            .rename_batch(&self.stored(old)?, &self.stored(new)?)
    }

    /// [`DataStore::entry_info`] in this namespace (its `key` is the stored key).
    ///
    /// # Errors
    /// [`Error::InvalidNamespaceKey`], and as [`DataStore::entry_info`].
    pub fn entry_info(&self, key: impl AsRef<[u8]>) -> Result<Option<crate::EntryInfo>> {
        let key = key.as_ref();
        self.store.entry_info(&self.stored(key)?)
    }

    /// The live entries of this namespace whose key (inside the namespace)
    /// starts with `prefix`, in file order.
    #[must_use]
    pub fn entries_with_prefix(&self, prefix: impl AsRef<[u8]>) -> crate::prefix::PrefixIter {
        let prefix = prefix.as_ref();
        let mut full = self.prefix.clone();
        full.extend_from_slice(prefix);
        self.store.entries_with_prefix(&full)
    }

    /// [`DataStore::batch_write_pairs`] in this namespace: atomic, for owned
    /// or borrowed pairs of anything that can be viewed as bytes.
    ///
    /// # Errors
    /// As [`Namespace::batch_write`].
    pub fn batch_write_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        entries: &[(K, V)],
    ) -> Result<u64> {
        let refs: Vec<(&[u8], &[u8])> = entries
            .iter()
            .map(|(key, value)| (key.as_ref(), value.as_ref()))
            .collect();
        self.batch_write(&refs)
    }

    /// [`DataStore::read`] in this namespace.
    ///
    /// # Errors
    /// [`Error::InvalidNamespaceKey`], and as [`DataStore::read`].
    pub fn read(&self, key: impl AsRef<[u8]>) -> Result<Option<EntryHandle>> {
        let key = key.as_ref();
        self.store.read(&self.stored(key)?)
    }

    /// [`DataStore::exists`] in this namespace.
    ///
    /// # Errors
    /// [`Error::InvalidNamespaceKey`].
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.store.exists(&self.stored(key)?)
    }

    /// [`DataStore::delete`] in this namespace; true if the key existed.
    ///
    /// # Errors
    /// [`Error::InvalidNamespaceKey`], and as [`DataStore::delete`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.store.delete(&self.stored(key)?)
    }

    /// [`DataStore::batch_delete`] in this namespace: atomic; returns how
    /// many keys existed.
    ///
    /// # Errors
    /// As [`Namespace::delete`]; nothing is deleted if any key is invalid.
    pub fn batch_delete(&self, keys: &[&[u8]]) -> Result<usize> {
        let stored = keys
            .iter()
            .map(|key| self.stored(key))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u8]> = stored.iter().map(Vec::as_slice).collect();
        self.store.batch_delete(&refs)
    }

    /// Number of live keys in this namespace (a scan of the store's keys).
    #[must_use]
    pub fn len(&self) -> usize {
        self.store.count_with_prefix(&self.prefix)
    }

    /// True when the namespace holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of this namespace (without the namespace), in file order.
    pub fn keys(&self) -> impl Iterator<Item = Vec<u8>> + use<> {
        let skip = self.prefix.len();
        self.store
            .keys_with_prefix(&self.prefix)
            .map(move |key| key[skip..].to_vec())
    }

    /// The keys of this namespace that start with `prefix` (without the
    /// namespace), in file order.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Vec<u8>> + use<> {
        let skip = self.prefix.len();
        let mut full = self.prefix.clone();
        full.extend_from_slice(prefix);
        self.store
            .keys_with_prefix(&full)
            .map(move |key| key[skip..].to_vec())
    }

    /// Every live entry of this namespace once, in file order. A handle's
    /// [`key`](EntryHandle::key) is the stored key; see [`Namespace::key_of`].
    #[must_use]
    pub fn iter_entries(&self) -> crate::prefix::PrefixIter {
        self.store.entries_with_prefix(&self.prefix)
    }

    /// Deletes every key of the namespace in one atomic batch; returns how
    /// many there were. Keys written by other threads while it runs may
    /// survive it.
    ///
    /// # Errors
    /// As [`DataStore::batch_delete`]; on error nothing is deleted.
    pub fn clear(&self) -> Result<usize> {
        let keys: Vec<Vec<u8>> = self.store.keys_with_prefix(&self.prefix).collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        self.store.batch_delete(&refs)
    }
}
