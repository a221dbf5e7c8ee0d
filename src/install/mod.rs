//! What a package installs beside the binary: shell completion scripts and
//! manual pages, both generated from the clap definitions in `cli/`, so
//! they never drift from the flags the binary takes. `commands/completions.rs`
//! and `commands/man.rs` print them; `pkg/build-deb.sh` writes them where a
//! distribution looks.

pub mod completion;
pub mod manpages;
