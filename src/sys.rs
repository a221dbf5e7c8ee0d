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

/// How a file system makes a set of new files durable at the least cost
/// that is still safe (the reasoning is in `depot.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One syncfs(2) for the whole set: a journaling file system whose
    /// sync_fs commits every pending change and flushes the device cache
    /// (ext2/3/4, XFS, Btrfs).
    WholeFilesystem,
    /// fdatasync(2) (F_FULLFSYNC on macOS) on each file: everything else.
    EachFile,
    /// Memory only (tmpfs, ramfs): nothing to flush.
    Volatile,
}

/// The [`Durability`] of the file system holding `dir`, from statfs(2)'s
/// f_type (magic numbers from linux/magic.h).
#[cfg(target_os = "linux")]
pub fn durability(dir: &Path) -> Durability {
    const EXT4_SUPER_MAGIC: i64 = 0xEF53; // also ext2 and ext3
    const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
    const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Durability::EachFile;
    };
    // SAFETY: statfs fills the zeroed struct it is given; the path is a
    // NUL-terminated string that outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return Durability::EachFile;
    }
    #[allow(clippy::unnecessary_cast)] // f_type is i64 here, u32 or i32 on other libcs
    match st.f_type as i64 {
        EXT4_SUPER_MAGIC | XFS_SUPER_MAGIC | BTRFS_SUPER_MAGIC => Durability::WholeFilesystem,
        TMPFS_MAGIC | RAMFS_MAGIC => Durability::Volatile,
        _ => Durability::EachFile,
    }
}

/// Elsewhere every file is flushed on its own.
#[cfg(not(target_os = "linux"))]
pub fn durability(_dir: &Path) -> Durability {
    Durability::EachFile
}

/// syncfs(2) on the file system holding `dir`: every dirty page and every
/// pending metadata change of that file system reaches stable storage.
#[cfg(target_os = "linux")]
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let d = File::open(dir)?;
    // SAFETY: syncfs on a descriptor `d` keeps open.
    if unsafe { libc::syncfs(d.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Not reached off Linux ([`durability`] never says WholeFilesystem there).
#[cfg(not(target_os = "linux"))]
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    sync_dir(dir)
}

/// The device a directory lives on, to flush each file system once.
pub fn device_of(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| m.dev())
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

/// Whether certforge runs as root, so that system stores can be changed
/// without sudo.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The lowest TCP port a process that is not root may listen on: Linux's
/// net.ipv4.ip_unprivileged_port_start (1024 unless changed; containers
/// often set 0), 1024 elsewhere.
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Whether this process may write `path` (access(2) with W_OK, which
/// answers for the real user, as sudo-less runs are).
pub fn can_write(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}
