//! Manual pages from the clap definitions (clap_mangen): certforge(1) and
//! one page per subcommand, certforge-init(1), certforge-templates-show(1)
//! and so on, as `man git-commit` works for git.

use clap::CommandFactory;

/// One rendered page: its file name (`certforge-sign.1`) and roff text.
pub struct Page {
    pub file: String,
    pub roff: Vec<u8>,
}

/// certforge(1) alone.
pub fn main_page() -> std::io::Result<Page> {
    Ok(pages()?.pop().expect("the main page is rendered last"))
}

/// Every page, subcommands first and certforge(1) last.
pub fn pages() -> std::io::Result<Vec<Page>> {
    let mut cmd = crate::cli::Cli::command().disable_help_subcommand(true);
    // Names the subcommands' pages certforge-SUB, as clap_mangen's own
    // generate_to does; rendering in memory lets the caller write them
    // without overwriting anything.
    cmd.build();
    let mut out = Vec::new();
    render(cmd, &mut out)?;
    Ok(out)
}

fn render(cmd: clap::Command, out: &mut Vec<Page>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        render(sub, out)?;
    }
    let man = clap_mangen::Man::new(cmd)
        .manual("certforge manual")
        .source(format!("certforge {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    out.push(Page { file: man.get_filename(), roff });
    Ok(())
}
