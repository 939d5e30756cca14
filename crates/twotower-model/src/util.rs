//! Small shared helpers: atomic file writes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes a file atomically: the content goes to a temporary file in the same
/// directory, is flushed and synced, then renamed over `path`. A crash never
/// leaves a half-written file at `path`.
///
/// # Errors
/// Any I/O error from creating, writing, syncing or renaming the file.
pub fn atomic_write<P, W>(path: P, write: W) -> io::Result<()>
where
    P: AsRef<Path>,
    W: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    })();
    let result = result.and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // never leave the temporary behind (a rename onto a directory fails)
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`atomic_write`] of a byte slice.
pub fn atomic_write_bytes<P: AsRef<Path>>(path: P, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        atomic_write_bytes(&p, b"first").unwrap();
        atomic_write_bytes(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn failed_rename_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("metrics.json");
        std::fs::create_dir(&target).unwrap();
        assert!(atomic_write(&target, |w| w.write_all(b"{}")).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["metrics.json"]);
    }

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        atomic_write_bytes(&p, b"good").unwrap();
        let r = atomic_write(&p, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"good");
    }
}
