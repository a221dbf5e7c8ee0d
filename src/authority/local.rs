//! What a sealed local CA is on disk (`init --local`): a root whose key was
//! wiped once it signed its one issuing intermediate, and `NAME.sealed`
//! naming that intermediate, which signs (and revokes) for it.

use crate::depot::{self, Depot};
use crate::pki::names::EntryName;

/// The depot extension of the file that says a root's key is gone, and
/// which CA signs for it.
pub const SEALED: &str = "sealed";

/// The name of the intermediate that signs for the local CA `root`.
pub fn issuing_name(root: &str) -> String {
    format!("{root} Issuing")
}

/// The intermediate a sealed root's `NAME.sealed` names, if `name` is one.
pub fn issuing_of(depot: &Depot, name: &EntryName) -> Option<String> {
    let text = depot::read_file(&depot.path(name, SEALED)).ok()?;
    String::from_utf8_lossy(&text).lines().find_map(|l| l.strip_prefix("issuing: ").map(str::to_string))
}
