//! `certforge man [--dir DIR]`: print certforge(1), or write one page per
//! subcommand into DIR, never overwriting a page already there.

use anyhow::{Context, Result};

use crate::cli::ManArgs;
use crate::depot::{self, Write1, PUBLIC_MODE};
use crate::install::manpages;

/// Runs `man`.
pub fn run(args: &ManArgs) -> Result<()> {
    let Some(dir) = &args.dir else {
        let page = manpages::main_page().context("cannot render the manual page")?;
        return super::common::print_stdout(&String::from_utf8_lossy(&page.roff));
    };
    let pages = manpages::pages().context("cannot render the manual pages")?;
    let names: Vec<String> = pages.iter().map(|p| p.file.clone()).collect();
    let writes: Vec<Write1> = pages
        .into_iter()
        .map(|p| Write1 { path: dir.join(&p.file), bytes: p.roff.into(), mode: PUBLIC_MODE, replace: false })
        .collect();
    depot::write_all(&writes)?;
    eprintln!("Wrote {} manual pages to {}: {}", names.len(), dir.display(), names.join(", "));
    eprintln!("  read one with: man -l {}", dir.join("certforge.1").display());
    Ok(())
}
