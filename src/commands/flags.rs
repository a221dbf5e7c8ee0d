//! The command-line flags that set each field the library names in its
//! errors, so that a message names what the user typed (`--domain "a..b":
//! …`) while the library speaks of a DNS name.

use crate::pki::san::SanField;
use crate::pki::subject::SubjectField;
use crate::pki::validity::ValidityField;

/// The `request-cert` flag for each kind of SAN.
pub fn san(field: SanField) -> &'static str {
    match field {
        SanField::Domain => "--domain",
        SanField::Ip => "--ip",
        SanField::Uri => "--uri",
        SanField::Email => "--email",
    }
}

/// The flags that set a certificate's validity: `--expires`, `--not-before`
/// and `--not-after`.
pub fn validity(field: ValidityField) -> &'static str {
    match field {
        ValidityField::Lifetime => "--expires",
        ValidityField::NotBefore => "--not-before",
        ValidityField::NotAfter => "--not-after",
    }
}

/// A flag that takes a span in `--expires`'s grammar, such as
/// `--expiring-within`: the flags for an error about it.
pub fn span(flag: &'static str) -> impl Fn(ValidityField) -> &'static str {
    move |field| if field == ValidityField::Lifetime { flag } else { validity(field) }
}

/// The flags that set each subject attribute.
pub fn subject(field: SubjectField) -> &'static str {
    match field {
        SubjectField::CommonName => "--common-name",
        SubjectField::Organization => "--organization",
        SubjectField::OrganizationalUnit => "--organizational-unit",
        SubjectField::Country => "--country",
        SubjectField::Province => "--province",
        SubjectField::Locality => "--locality",
    }
}
