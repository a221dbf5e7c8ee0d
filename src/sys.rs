//! What differs between operating systems, in one place: how a file is made
//! durable, and file modes. certforge is built and tested on Linux; macOS
//! and the BSDs take the portable branches below and are expected to build;
//! Windows is out of scope for now (no POSIX modes for keys, no flock on a
//! directory).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Starts writing `f`'s dirty pages to the device without waiting, so that
/// the waits in [`sync_data`] overlap. Linux only (sync_file_range(2)); on
/// other systems a no-op, and [`sync_data`] alone does the work.
pub fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: only starts writeback on a descriptor `f` keeps open; a
        // failure is harmless because sync_data, which follows, is what counts.
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Waits until `f`'s data is on stable storage: fdatasync(2) on Linux and
/// the BSDs.
#[cfg(not(target_os = "macos"))]
pub fn sync_data(f: &File) -> io::Result<()> {
    f.sync_data()
}

/// Waits until `f`'s data is on stable storage. On macOS fsync(2) only
/// hands the data to the drive, which may keep it in a volatile cache
/// (Apple's fsync(2) man page), so this takes fcntl(F_FULLFSYNC), falling
/// back to fsync on file systems that refuse it.
#[cfg(target_os = "macos")]
pub fn sync_data(f: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: fcntl on a descriptor `f` keeps open, with no pointer argument.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_FULLFSYNC) } == 0 {
        Ok(())
    } else {
        f.sync_all()
    }
}

/// Makes the directory entries of `dir` durable (a new name is only safe
/// once its directory is synced, POSIX fsync(2)).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    sync_data(&File::open(dir)?)
}

/// Creates `path`, which must not exist, with `mode` from the start, so a
/// key is never readable by others, not even briefly. The umask may narrow
/// the mode at creation, so it is set again exactly.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(mode)) {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// The permission bits of a file (`0o600` for a key).
pub fn mode(meta: &Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}
