//! Validation (Pebble's `va` role): the trait the front end asks whether
//! a client proved control of an identifier. The checks that go on the
//! network (http-01, dns-01, tls-alpn-01) live in `crate::serve::validate`;
//! here is only the seam, and `--skip-validation`.

use super::model::{ChallengeKind, Ident};
use super::problem::Problem;

/// Checks one challenge: Ok when the client proved control.
pub trait Validator: Send + Sync {
    fn validate(&self, ident: &Ident, kind: ChallengeKind, key_authorization: &str) -> Result<(), Problem>;
}

/// `--skip-validation`: every challenge passes.
pub struct SkipValidation;

impl Validator for SkipValidation {
    fn validate(&self, _: &Ident, _: ChallengeKind, _: &str) -> Result<(), Problem> {
        Ok(())
    }
}
