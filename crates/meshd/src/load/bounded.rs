//! Reading local input with a size limit: the config, key files, standard input.
//!
//! - A path must name a regular file, checked before opening (so `/dev/zero` is never read and a
//!   FIFO never waited on) and again on the opened file (the path may change meanwhile).
//! - The read stops one byte past the limit, so a file that grows while it is read cannot pass.

use anyhow::{bail, Result};
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What kind of file `meta` describes, for the error message.
fn file_kind(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// A regular file of at most `limit` bytes; the messages never contain the content.
fn regular(meta: &Metadata, limit: u64) -> Result<()> {
    if let Some(kind) = file_kind(meta) {
        bail!("it is {kind}, not a regular file");
    }
    if meta.len() > limit {
        bail!(
            "it is {} bytes, more than the limit of {limit} bytes",
            meta.len()
        );
    }
    Ok(())
}

/// The text of the regular file at `path`, at most `limit` bytes.
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<String> {
    regular(&std::fs::metadata(path)?, limit)?;
    // Non-blocking: should the path have become a FIFO since, opening it must not wait.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    regular(&file.metadata()?, limit)?;
    read_at_most(file, limit)
}

/// Everything `input` holds, refused when it is more than `limit` bytes.
pub(crate) fn read_at_most(input: impl Read, limit: u64) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        bail!("it holds more than the limit of {limit} bytes");
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => bail!("it is not UTF-8 text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A directory of its own, removed on drop.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("meshd-bounded-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        Dir(d)
    }

    fn message(r: Result<String>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn reads_a_file_up_to_the_limit_and_refuses_one_byte_more() {
        let d = dir("limit");
        let f = d.0.join("f");
        let _ = std::fs::write(&f, "0123456789");
        assert_eq!(read_file(&f, 10).ok().as_deref(), Some("0123456789"));
        let err = message(read_file(&f, 9));
        assert!(
            err.contains("10 bytes, more than the limit of 9 bytes"),
            "{err}"
        );
    }

    #[test]
    fn refuses_devices_directories_and_fifos_without_reading_or_waiting() {
        let err = message(read_file(Path::new("/dev/zero"), 1 << 20));
        assert_eq!(err, "it is a character device, not a regular file");
        let d = dir("kinds");
        assert_eq!(
            message(read_file(&d.0, 1 << 20)),
            "it is a directory, not a regular file"
        );
        let fifo = d.0.join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap_or_default();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            message(read_file(&fifo, 1 << 20)),
            "it is a FIFO (named pipe), not a regular file"
        );
    }

    #[test]
    fn a_stream_longer_than_the_limit_is_refused_after_limit_plus_one_bytes() {
        // An endless stream: the read must stop by itself.
        let endless = std::io::repeat(b'a');
        let err = message(read_at_most(endless, 4096));
        assert_eq!(err, "it holds more than the limit of 4096 bytes");
        assert_eq!(read_at_most(&b"abc"[..], 3).ok().as_deref(), Some("abc"));
        assert_eq!(
            message(read_at_most(&[0xff, 0xfe][..], 3)),
            "it is not UTF-8 text"
        );
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let err = message(read_file(Path::new("/nonexistent/meshd/mesh.yaml"), 10));
        assert!(err.contains("No such file"), "{err}");
    }
}
