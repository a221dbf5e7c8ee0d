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
    let examples = cmd.get_after_help().map(ToString::to_string);
    let man = clap_mangen::Man::new(cmd.after_help(None::<&str>))
        .manual("certforge manual")
        .source(format!("certforge {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    if let Some(text) = examples {
        let at = find(&roff, b"\n.SH VERSION\n").map_or(roff.len(), |i| i + 1);
        roff.splice(at..at, examples_section(&text).into_bytes());
    }
    out.push(Page { file: man.get_filename(), roff });
    Ok(())
}

/// The examples (a command's `after_help`) as a no-fill block. clap_mangen
/// would make them paragraphs, which groff refills and hyphenates, cutting
/// an example command where a pasted copy no longer runs; in no-fill mode
/// every line stays as written, ` \` continuations included.
fn examples_section(text: &str) -> String {
    let mut s = String::from(".SH EXAMPLES\n.nf\n");
    for line in text.lines() {
        // `\-` is the hyphen-minus a shell needs (a bare `-` may print as a
        // typographic hyphen) and `\(aq` the straight quote; `\&` keeps a
        // line that starts with `.` or `'` from being read as a request.
        let line = line.replace('\\', "\\e").replace('-', "\\-").replace('\'', "\\(aq");
        if line.starts_with('.') {
            s.push_str("\\&");
        }
        s.push_str(&line);
        s.push('\n');
    }
    s + ".fi\n"
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
