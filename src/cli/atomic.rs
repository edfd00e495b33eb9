//! Writing an output file all at once: through a temporary file in the
//! target's directory that is renamed into place when complete, so a
//! failure (or Ctrl-C) leaves any existing file as it was. Outputs that
//! are not regular files (`/dev/null`, a FIFO, a terminal) are written
//! directly: renaming over them would replace the device node or pipe.

use std::fs::{self, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cli::interrupt::{self, Kind};

/// Writes `path` with what `fill` writes, through a temporary file renamed
/// over `path` at the end. A symlink at `path` is followed (its target is
/// replaced, as a shell redirection would write it); an existing file's
/// permissions are kept, a new file gets `0666` less the umask. A target
/// that exists and is not a regular file or a directory is written in place.
pub fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let target = resolve(path);
    if let Ok(meta) = fs::metadata(&target)
        && !meta.is_file()
        && !meta.is_dir()
    {
        let special = fs::OpenOptions::new().write(true).open(&target)?;
        let mut out = BufWriter::new(&special);
        fill(&mut out)?;
        return out.flush();
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(target.file_name().unwrap_or_default());
    prefix.push(".");
    let existing = fs::metadata(&target).ok().filter(fs::Metadata::is_file);
    let temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".partial")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    let _guard = interrupt::remove_on_interrupt(temp.path(), Kind::File);
    if let Some(meta) = &existing {
        fs::set_permissions(temp.path(), meta.permissions())?;
    }
    {
        let mut out = BufWriter::new(temp.as_file());
        fill(&mut out)?;
        out.flush()?;
    }
    temp.persist(&target).map_err(|e| e.error)?;
    Ok(())
}

/// `path`, or the file it names through symlinks when it is one.
fn resolve(path: &Path) -> PathBuf {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && let Ok(real) = fs::canonicalize(path) {
        return real;
    }
    path.to_path_buf()
}
