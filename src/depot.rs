//! The depot: the only module that touches the disk. It finds entries by
//! name, reads them, and writes sets of files atomically: each file is
//! written to a temporary file created with its final mode, the set is
//! flushed to disk, then each file is linked into place, which fails rather
//! than overwrite, and the new names are flushed last. None appears before
//! its bytes are on disk, and keys are linked last.
//!
//! ## Durability at the cost of one flush per command, not one per file
//!
//! A set is made durable in two steps, each one flush per file system
//! whatever the number of files (the idea of git's `core.fsyncMethod =
//! batch`, carried out with syncfs(2) so that it does not depend on how one
//! file's fsync happens to behave):
//!
//! 1. every file of the set is written to its temporary name, then one
//!    syncfs(2) on the file system makes all of them durable: data, inodes
//!    and block maps; only then is any of them linked into place, so no name
//!    ever points at bytes that are not on disk;
//! 2. after the links, a second syncfs makes the new names durable, so what
//!    certforge reports as written survives a power cut.
//!
//! Why one syncfs is enough, per file system (`sys::durability` reads the
//! type from statfs(2)):
//! - **ext2/3/4**: syncfs writes back every dirty inode of the file system,
//!   then `ext4_sync_fs` forces a full jbd2 commit whose commit block is
//!   written with a cache flush (REQ_PREFLUSH|REQ_FUA), so the data written
//!   before it and all metadata in it are on stable storage. A full commit,
//!   not a fast commit: fast_commit (`mkfs -O fast_commit`) only serves
//!   fsync, which is why git's dummy-file fsync is not relied on here.
//! - **XFS**: `xfs_fs_sync_fs` forces the whole log (`xfs_log_force` with
//!   XFS_LOG_SYNC), which flushes the device cache first, after writeback
//!   has completed and logged every size update.
//! - **Btrfs**: `btrfs_sync_fs` commits the running transaction, which
//!   writes the new tree roots and superblock with flushes. (One file's
//!   fsync would not do: Btrfs logs only that inode in its tree log.)
//! - **tmpfs, ramfs**: memory only; there is nothing to flush.
//! - **Everything else** falls back to one fdatasync per file (batched:
//!   writeback of all files is started first) and an fsync per directory:
//!   NFS, FUSE, overlayfs (containers), ZFS, F2FS and any file system not
//!   named above, because what their sync_fs guarantees is not checked
//!   here. On macOS fdatasync is F_FULLFSYNC (`sys.rs`).
//!
//! The cost of syncfs: it also waits for other processes' dirty data on the
//! same file system. That is the trade for a flush count that does not grow
//! with the set: the 2,002 files of a 1,000-leaf plan took 3.0 s with one
//! fdatasync each on the test machine's ext4 disk (BENCHMARKS.md). A small
//! set (at most `SMALL_SET` files: one `sign`, one ACME certificate) is
//! flushed file by file everywhere: a few fdatasyncs and a directory fsync
//! cost less than waiting for everyone's dirty data, which under `serve`
//! includes its own SQLite log.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::pki::names::EntryName;
use crate::sys;

/// Mode for private keys: owner read/write only.
pub const KEY_MODE: u32 = 0o600;
/// Mode for certificates, CSRs and CRLs.
pub const PUBLIC_MODE: u32 = 0o644;

/// Largest input file certforge reads: PEM files are a few KiB, and a CRL
/// with 100,000 entries is a few MiB; anything bigger is a mistake.
pub const MAX_INPUT: u64 = 64 << 20;

/// A depot directory.
#[derive(Debug, Clone)]
pub struct Depot {
    root: PathBuf,
}

/// One file to write.
#[derive(Debug)]
pub struct Write1 {
    pub path: PathBuf,
    /// Wiped when dropped: a set often holds a private key.
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
    pub mode: u32,
    /// Replace an existing file (only CRLs and derived bundles, which are
    /// rewritten in place).
    pub replace: bool,
}

impl Depot {
    /// A depot at `root`; nothing is created until the first write.
    pub fn new(root: impl Into<PathBuf>) -> Depot {
        Depot { root: root.into() }
    }

    /// The depot directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `name.ext` inside the depot.
    pub fn path(&self, name: &EntryName, ext: &str) -> PathBuf {
        self.root.join(name.file(ext))
    }

    /// Whether `name.ext` exists (as anything, a dangling link included).
    pub fn exists(&self, name: &EntryName, ext: &str) -> bool {
        present(&self.path(name, ext))
    }

    /// Takes the depot's lock until the guard drops, so that concurrent
    /// certforge runs that change the same depot (a CRL rewrite above all)
    /// do not interleave. The lock is flock(2) on the directory itself, so
    /// no lock file appears in the depot. A depot that does not exist yet
    /// has nothing to protect: `None`.
    pub fn lock(&self) -> Result<Option<File>> {
        self.locked(File::lock)
    }

    /// Takes the depot's lock shared: for adding a new entry, which cannot
    /// clash with another new entry (writes never overwrite), only with a
    /// command that holds the lock to rewrite or move things. `serve`
    /// issues in parallel under it.
    pub fn lock_shared(&self) -> Result<Option<File>> {
        self.locked(File::lock_shared)
    }

    fn locked(&self, how: fn(&File) -> io::Result<()>) -> Result<Option<File>> {
        if !self.root.is_dir() {
            return Ok(None);
        }
        let dir = File::open(&self.root)
            .with_context(|| format!("cannot open the depot directory {}", self.root.display()))?;
        how(&dir).with_context(|| format!("cannot lock the depot directory {}", self.root.display()))?;
        Ok(Some(dir))
    }

    /// The directories beside this one that hold certificates or requests,
    /// sorted: where a mistyped `--depot-path` most likely meant. Paths are
    /// spelled as the depot's own is (`certs` beside `cert`).
    pub fn nearby(&self) -> Vec<PathBuf> {
        /// Enough of a large parent (a home directory) to find a depot.
        const LOOKED_AT: usize = 2000;
        let base = self.root.parent().filter(|p| !p.as_os_str().is_empty());
        let holds_certs = |dir: &Path| {
            fs::read_dir(dir).into_iter().flatten().flatten().take(LOOKED_AT).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                !name.starts_with('.') && (name.ends_with(".crt") || name.ends_with(".csr"))
            })
        };
        let mut out: Vec<PathBuf> = fs::read_dir(base.unwrap_or(Path::new(".")))
            .into_iter()
            .flatten()
            .flatten()
            .take(LOOKED_AT)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| base.map_or_else(|| PathBuf::from(e.file_name()), |b| b.join(e.file_name())))
            .filter(|p| *p != self.root && holds_certs(p))
            .collect();
        out.sort();
        out
    }

    /// The depot's entry files ending in `.ext`, sorted by name: what
    /// listing, completion and `verify --crl auto` look through. Hidden
    /// files (certforge's temporaries) and chain files (`NAME.chain.crt`,
    /// `NAME.fullchain.crt`: they belong to their certificate and are no
    /// entries of their own) are left out, and so is anything that is not
    /// a file. A depot that does not exist holds nothing.
    pub fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                p.is_file()
                    && p.extension().is_some_and(|x| x == ext)
                    && !name.starts_with('.')
                    && !crate::pki::names::is_chain_file(&name)
            })
            .collect();
        out.sort();
        out
    }

    /// Creates the depot directory if needed.
    pub fn ensure_dir(&self) -> Result<()> {
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root)
                .with_context(|| format!("cannot create the depot directory {}", self.root.display()))?;
        }
        Ok(())
    }
}

/// Whether `path` exists, as anything (a dangling link included).
pub fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Reads a file, refusing anything over [`MAX_INPUT`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory, not a file", path.display());
    }
    if meta.len() > MAX_INPUT {
        bail!(
            "{} is {} MiB; certforge reads PEM and DER files of at most {} MiB",
            path.display(),
            meta.len() >> 20,
            MAX_INPUT >> 20
        );
    }
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes every file in `set` or none. Fails before writing anything when a
/// target (that may not be replaced) exists already.
pub fn write_all(set: &[Write1]) -> Result<()> {
    write_with(set, Flusher { small: set.len() <= SMALL_SET, ..Flusher::default() })
}

fn write_with(set: &[Write1], mut flusher: Flusher) -> Result<()> {
    for w in set {
        if !w.replace && fs::symlink_metadata(&w.path).is_ok() {
            bail!(
                "{} already exists; certforge never overwrites a file. Move it aside or choose another name",
                w.path.display()
            );
        }
        if w.replace && fs::symlink_metadata(&w.path).is_ok_and(|m| m.file_type().is_symlink()) {
            bail!(
                "{} is a symbolic link; certforge does not write through links. Replace it with a regular file",
                w.path.display()
            );
        }
    }
    let mut staged: Vec<(PathBuf, &Write1)> = Vec::new();
    let result = (|| -> Result<()> {
        for w in set {
            let dir = parent_dir(&w.path);
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let (tmp, file) = stage(w).with_context(|| format!("cannot write {}", w.path.display()))?;
            staged.push((tmp, w));
            flusher.add(dir, file).context("cannot flush new files to disk")?;
        }
        flusher.data().context("cannot flush new files to disk")
    })();
    if let Err(e) = result {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(e);
    }
    // Public files first, keys last: a process killed between two links
    // leaves at worst a certificate or CSR without its key, never a key
    // without its record.
    staged.sort_by_key(|(_, w)| w.mode == KEY_MODE);
    let mut placed: Vec<&Path> = Vec::new();
    for (i, (tmp, w)) in staged.iter().enumerate() {
        let outcome = if w.replace {
            fs::rename(tmp, &w.path)
        } else {
            // link(2) fails with EEXIST instead of replacing, so a file that
            // appeared since the check above is still never overwritten.
            fs::hard_link(tmp, &w.path).and_then(|()| fs::remove_file(tmp))
        };
        if let Err(e) = outcome {
            for (t, _) in &staged[i..] {
                let _ = fs::remove_file(t);
            }
            for p in &placed {
                let _ = fs::remove_file(p);
            }
            let what = if e.kind() == io::ErrorKind::AlreadyExists {
                "it appeared while certforge ran; nothing was overwritten".to_string()
            } else {
                e.to_string()
            };
            bail!("cannot write {}: {what}", w.path.display());
        }
        if !w.replace {
            placed.push(&w.path);
        }
    }
    // The new names: reported as written, so they must survive a power cut.
    flusher.names(set.iter().map(|w| parent_dir(&w.path)));
    Ok(())
}

/// The largest set flushed file by file on every file system.
const SMALL_SET: usize = 4;

/// Makes a set of staged files durable before they are linked into place,
/// each file system the cheapest way that is safe on it
/// ([`sys::Durability`]; the module comment says why each is safe).
#[derive(Default)]
struct Flusher {
    /// A set of at most [`SMALL_SET`] files: per-file flushes, no syncfs.
    small: bool,
    /// What each directory's file system needs and its device, asked once
    /// per directory (a set of 2,002 files has one or two directories).
    known: Vec<(PathBuf, sys::Durability, Option<u64>)>,
    /// One directory per file system that gets a single syncfs, by device.
    filesystems: Vec<(u64, PathBuf)>,
    /// Files flushed one by one, in batches of [`FLUSH_BATCH`].
    each: Vec<File>,
}

impl Flusher {
    fn durability(&mut self, dir: &Path) -> (sys::Durability, Option<u64>) {
        if let Some((_, d, dev)) = self.known.iter().find(|(p, _, _)| p == dir) {
            return (*d, *dev);
        }
        let (d, dev) = match sys::durability(dir) {
            sys::Durability::WholeFilesystem if self.small => (sys::Durability::EachFile, None),
            d => (d, sys::device_of(dir)),
        };
        self.known.push((dir.to_path_buf(), d, dev));
        (d, dev)
    }

    /// Takes a staged file of `dir`; files on a per-file file system are
    /// flushed a batch at a time so that no more than a batch stay open.
    fn add(&mut self, dir: &Path, file: File) -> io::Result<()> {
        match self.durability(dir) {
            (sys::Durability::Volatile, _) => {}
            (sys::Durability::WholeFilesystem, Some(dev)) => {
                if !self.filesystems.iter().any(|(d, _)| *d == dev) {
                    self.filesystems.push((dev, dir.to_path_buf()));
                }
            }
            _ => {
                self.each.push(file);
                if self.each.len() >= FLUSH_BATCH {
                    flush(&mut self.each)?;
                }
            }
        }
        Ok(())
    }

    /// Flushes the data (and the metadata that finds it) of every file
    /// added: one syncfs per journaling file system, else per file.
    fn data(&mut self) -> io::Result<()> {
        flush(&mut self.each)?;
        for (_, dir) in &self.filesystems {
            sys::sync_filesystem(dir)?;
        }
        Ok(())
    }

    /// Flushes the directory entries made since [`Flusher::data`]: one more
    /// syncfs per journaling file system, else an fsync per directory.
    /// Best effort: the files are in place and their bytes durable already.
    fn names<'a>(&mut self, dirs: impl Iterator<Item = &'a Path>) {
        let mut done: Vec<&Path> = Vec::new();
        for dir in dirs {
            if done.contains(&dir) {
                continue;
            }
            done.push(dir);
            if self.durability(dir).0 == sys::Durability::EachFile {
                let _ = DIR_SYNCS.sync(dir);
            }
        }
        for (_, dir) in &self.filesystems {
            let _ = sys::sync_filesystem(dir);
        }
    }
}

/// Directory fsyncs shared between the threads of this process that add
/// files to one directory at once (`serve` finalizing orders in parallel):
/// an fsync of a directory that starts after a file was linked into it
/// makes that link durable, whoever asks for it, so a thread that finds an
/// fsync of its directory under way waits for it to end and then for one
/// more, unless a later one already covers its link. Under load one fsync
/// serves several certificates; alone, a thread syncs as before.
static DIR_SYNCS: DirSyncs = DirSyncs { dirs: std::sync::Mutex::new(Vec::new()), done: std::sync::Condvar::new() };

struct DirSyncs {
    /// Per directory: links asked to be synced (numbered in order), the
    /// number up to which they are, and whether an fsync is under way.
    dirs: std::sync::Mutex<Vec<(PathBuf, DirSync)>>,
    done: std::sync::Condvar,
}

#[derive(Default, Clone, Copy)]
struct DirSync {
    asked: u64,
    synced: u64,
    running: bool,
}

impl DirSyncs {
    /// Returns once an fsync of `dir` that started after this call has
    /// ended (its error, if the one this thread ran failed).
    fn sync(&self, dir: &Path) -> io::Result<()> {
        self.sync_with(dir, sys::sync_dir)
    }

    fn sync_with(&self, dir: &Path, fsync: impl Fn(&Path) -> io::Result<()>) -> io::Result<()> {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        let at = match dirs.iter().position(|(d, _)| d == dir) {
            Some(at) => at,
            None => {
                dirs.push((dir.to_path_buf(), DirSync::default()));
                dirs.len() - 1
            }
        };
        dirs[at].1.asked += 1;
        let mine = dirs[at].1.asked;
        loop {
            let state = dirs[at].1;
            if state.synced >= mine {
                return Ok(());
            }
            if !state.running {
                // Every link numbered up to `covers` was made before this
                // fsync starts.
                let covers = state.asked;
                dirs[at].1.running = true;
                drop(dirs);
                let outcome = fsync(dir);
                dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
                let state = &mut dirs[at].1;
                state.running = false;
                if outcome.is_ok() {
                    state.synced = state.synced.max(covers);
                }
                self.done.notify_all();
                return outcome;
            }
            dirs = self.done.wait(dirs).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// How many staged files are held open for one batched flush; well under
/// the usual limit of 1,024 open files.
const FLUSH_BATCH: usize = 256;

/// Makes `files` durable: starts writeback of all of them, then waits for
/// each (fdatasync), so their journal commits are shared.
fn flush(files: &mut Vec<File>) -> io::Result<()> {
    for f in files.iter() {
        sys::start_writeback(f);
    }
    for f in files.iter() {
        sys::sync_data(f)?;
    }
    files.clear();
    Ok(())
}

/// Writes `w.bytes` to a new temporary file beside the target, created with
/// the final mode (so a key is never readable by others, not even briefly).
/// The caller flushes it ([`flush`]) before it is linked into place.
fn stage(w: &Write1) -> io::Result<(PathBuf, File)> {
    let dir = parent_dir(&w.path);
    let base = w.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for attempt in 0..16u32 {
        let mut rnd = [0u8; 6];
        aws_lc_rs::rand::fill(&mut rnd).map_err(|_| io::Error::other("no randomness"))?;
        let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{base}.{suffix}.tmp"));
        let mut file = match sys::create_new(&tmp, w.mode) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 15 => continue,
            Err(e) => return Err(e),
        };
        if let Err(e) = file.write_all(&w.bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        return Ok((tmp, file));
    }
    Err(io::Error::other("could not pick a temporary file name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dir: &Path, n: usize) -> Vec<Write1> {
        (0..n)
            .map(|i| Write1 {
                path: dir.join(format!("f{i}.{}", if i % 2 == 0 { "crt" } else { "key" })),
                bytes: format!("file {i}").into_bytes().into(),
                mode: if i % 2 == 0 { PUBLIC_MODE } else { KEY_MODE },
                replace: false,
            })
            .collect()
    }

    /// Each flush method (whichever this machine's /tmp would pick) writes
    /// the whole set with its modes and leaves no temporary behind, past
    /// the per-file batch size too.
    #[test]
    fn every_flush_method_writes_the_whole_set() {
        for how in [sys::Durability::WholeFilesystem, sys::Durability::EachFile, sys::Durability::Volatile] {
            let tmp = tempfile::tempdir().unwrap();
            let files = set(tmp.path(), FLUSH_BATCH + 3);
            let known = vec![(tmp.path().to_path_buf(), how, sys::device_of(tmp.path()))];
            let flusher = Flusher { known, ..Flusher::default() };
            write_with(&files, flusher).unwrap();
            for w in &files {
                assert_eq!(fs::read(&w.path).unwrap(), w.bytes.as_slice(), "{how:?}");
                assert_eq!(sys::mode(&fs::metadata(&w.path).unwrap()), w.mode, "{how:?}");
            }
            let names: Vec<String> = fs::read_dir(tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names.len(), files.len(), "{how:?}: no temporary left: {names:?}");
        }
    }

    /// A directory fsync is shared only by links it covers: every caller
    /// returns after an fsync that started after it asked, and callers that
    /// arrive while one runs share the next, so 8 threads make fewer than 8.
    #[test]
    fn a_shared_directory_fsync_covers_only_the_links_made_before_it_started() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Barrier;
        let syncs = DirSyncs { dirs: std::sync::Mutex::new(Vec::new()), done: std::sync::Condvar::new() };
        let (clock, started, runs) = (AtomicU64::new(0), std::sync::Mutex::new(Vec::new()), AtomicU64::new(0));
        let fsync = |_: &Path| {
            started.lock().unwrap().push(clock.fetch_add(1, Ordering::SeqCst));
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(())
        };
        let barrier = Barrier::new(8);
        std::thread::scope(|t| {
            for _ in 0..8 {
                t.spawn(|| {
                    barrier.wait();
                    let asked = clock.fetch_add(1, Ordering::SeqCst);
                    syncs.sync_with(Path::new("/depot"), fsync).unwrap();
                    let covering = started.lock().unwrap().iter().any(|s| *s > asked);
                    assert!(covering, "returned without an fsync started after it asked at {asked}");
                });
            }
        });
        let runs = runs.load(Ordering::SeqCst);
        assert!((1..8).contains(&runs), "{runs} fsyncs for 8 threads");
        // A failed fsync is the error of the thread that ran it, and the
        // next caller runs its own.
        let failing = |_: &Path| Err(io::Error::other("disk gone"));
        assert!(syncs.sync_with(Path::new("/depot"), failing).is_err());
        assert!(syncs.sync_with(Path::new("/depot"), fsync).is_ok());
    }

    /// `files` lists the entry files of one extension, sorted, and none of
    /// what only looks like one: other extensions, hidden temporaries,
    /// chain files, directories named like an entry, or a depot that does
    /// not exist.
    #[test]
    fn files_lists_one_extension_sorted_and_skips_what_is_no_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for f in ["b.crt", "a.crt", "a.key", "a.csr", ".a.crt.tmp", ".hidden.crt", "a.chain.crt", "a.fullchain.crt"] {
            fs::write(root.join(f), "x").unwrap();
        }
        fs::create_dir(root.join("dir.crt")).unwrap();
        let depot = Depot::new(root);
        assert_eq!(depot.files("crt"), [root.join("a.crt"), root.join("b.crt")]);
        assert_eq!(depot.files("csr"), [root.join("a.csr")]);
        assert!(depot.files("crl").is_empty());
        assert!(Depot::new(root.join("missing")).files("crt").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn file_systems_are_told_apart_by_statfs() {
        assert_eq!(sys::durability(Path::new("/proc")), sys::Durability::EachFile, "procfs is no journaling fs");
        if Path::new("/dev/shm").is_dir() {
            assert_eq!(sys::durability(Path::new("/dev/shm")), sys::Durability::Volatile);
        }
    }
}
