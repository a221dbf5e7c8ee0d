//! `certforge templates`: the built-in certificate templates, to read and
//! to copy.

use anyhow::Result;

use super::common::{print_stdout, usage};
use crate::cli::TemplatesAction;
use crate::pki::template::{Template, BUILTINS};

/// Runs `templates list` or `templates show NAME`.
pub fn run(action: &TemplatesAction) -> Result<()> {
    match action {
        TemplatesAction::List => {
            let mut s = String::from(
                "Built-in templates (certforge templates show NAME prints one; pass a copy with --template FILE):\n",
            );
            for (name, _) in BUILTINS {
                let t = Template::builtin(name).expect("built-in");
                s.push_str(&format!("  {name:<13} {}\n", t.description.as_deref().unwrap_or("")));
            }
            print_stdout(&s)
        }
        TemplatesAction::Show { name } => {
            let text = BUILTINS.iter().find(|(n, _)| n == name).map(|(_, t)| *t).ok_or_else(|| {
                usage(format!(
                    "no built-in template named {name:?}; `certforge templates list` shows them ({})",
                    BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ))
            })?;
            print_stdout(text)
        }
    }
}
