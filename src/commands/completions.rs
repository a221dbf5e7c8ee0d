//! `certforge completions SHELL`: print the shell's completion script
//! (`cli/complete.rs` says how it completes depot names).

use anyhow::{Context, Result};

use crate::cli::CompletionsArgs;
use crate::install::completion::write_script;

/// Runs `completions`.
pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut script = Vec::new();
    write_script(args.shell, &mut script).context("cannot write the completion script")?;
    super::common::print_stdout(&String::from_utf8_lossy(&script))
}
