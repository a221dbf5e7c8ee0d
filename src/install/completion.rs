//! Shell completion. The scripts `certforge completions SHELL` prints are
//! clap_complete's "env" scripts: at each TAB the shell runs
//! `COMPLETE=SHELL certforge -- <the words typed>`, and certforge answers
//! from its own argument definitions. So besides subcommands and flags it
//! completes what no static script can: the CA names after `--CA` and the
//! entry names after `sign`, `revoke --CN`, `renew`, `export`, `verify` and
//! `inspect`, read from the depot that the line being completed names
//! (`cli/complete.rs` finds them). The binary's `main` answers those calls.

use std::io::Write;

use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::complete::Shell;

/// The environment variable that asks certforge for completions.
pub const VAR: &str = "COMPLETE";

/// Writes the script that registers certforge's completion in `shell`. It
/// calls `certforge` through PATH, so one script serves wherever the binary
/// is installed (/usr/bin from the .deb, ~/.cargo/bin from cargo install).
pub fn write_script(shell: Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::PowerShell => &Powershell,
        Shell::Elvish => &Elvish,
    };
    completer.write_registration(VAR, "certforge", "certforge", "certforge", out)?;
    if shell == Shell::Zsh {
        // zsh autoloads files in $fpath (Debian: vendor-completions/_certforge)
        // as the body of the function `_certforge`, run at the first TAB. The
        // body above only defines the completer; call it that first time too.
        writeln!(
            out,
            "if [[ \"${{funcstack[1]}}\" == _certforge ]]; then _clap_dynamic_completer_certforge \"$@\"; fi"
        )?;
    }
    Ok(())
}
