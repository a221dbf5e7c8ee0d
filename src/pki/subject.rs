//! Subject distinguished names: built from certstrap's subject flags, or
//! copied from a CSR attribute by attribute.

use rcgen::{DistinguishedName, DnType, DnValue};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

/// The subject fields a user can set (certstrap's `--cn`, `-o`, `--ou`,
/// `-c`, `--st`, `-l`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub common_name: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    pub province: Option<String>,
    pub locality: Option<String>,
}

/// The subject attributes a user can set, as [`SubjectError`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectField {
    CommonName,
    Organization,
    OrganizationalUnit,
    Country,
    Province,
    Locality,
}

impl SubjectField {
    /// The attribute's name in X.520 and RFC 5280: "commonName",
    /// "organizationName", "stateOrProvinceName"…
    pub fn noun(self) -> &'static str {
        match self {
            SubjectField::CommonName => "commonName",
            SubjectField::Organization => "organizationName",
            SubjectField::OrganizationalUnit => "organizationalUnitName",
            SubjectField::Country => "countryName",
            SubjectField::Province => "stateOrProvinceName",
            SubjectField::Locality => "localityName",
        }
    }
}

/// Why a subject was refused. Its `Display` names the attribute; for the
/// fields a user sets, [`SubjectError::naming`] names them as the caller
/// does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectError {
    TooLong { field: SubjectField, value: String, len: usize, max: usize, what: &'static str },
    Empty { field: SubjectField },
    Control { field: SubjectField, value: String },
    Country { value: String },
    MultiValued { what: String },
    Repeated { what: String, attr: String },
    StringType { what: String, attr: String },
}

impl SubjectError {
    /// The message with the field named by `name`, e.g. a command-line flag
    /// (`--organization "…" is 70 characters; …`).
    pub fn naming(&self, name: impl Fn(SubjectField) -> &'static str) -> String {
        self.message(&name, "leave the flag out")
    }

    fn message(&self, name: &dyn Fn(SubjectField) -> &'static str, leave_out: &str) -> String {
        match self {
            SubjectError::TooLong { field, value, len, max, what } => format!("{} {value:?} is {len} characters; RFC 5280 allows at most {max} (ub-{what}), and strict clients and pkilint refuse longer values", name(*field)),
            SubjectError::Empty { field } => format!("{} is empty; give a value or {leave_out}", name(*field)),
            SubjectError::Control { field, value } => format!("{} {value:?} holds a control character (such as NUL), which clients and logs mishandle (a NUL once split 'bank.com\\0.evil.com'); remove it", name(*field)),
            SubjectError::Country { value } => format!("{} {value:?} must be a two-letter ISO 3166 code such as US or DE (RFC 5280 X520countryName)", name(SubjectField::Country)),
            SubjectError::MultiValued { what } => format!("{what}: the subject has a multi-valued RDN (several attributes joined with +), which certforge cannot copy exactly; request a subject with one attribute per RDN"),
            SubjectError::Repeated { what, attr } => format!("{what}: the subject repeats the attribute {attr}, which certforge cannot copy exactly; request a subject with each attribute once"),
            SubjectError::StringType { what, attr } => format!("{what}: the subject attribute {attr} uses a string type certforge cannot copy"),
        }
    }
}

impl std::fmt::Display for SubjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(&SubjectField::noun, "leave it out"))
    }
}

impl std::error::Error for SubjectError {}

impl Subject {
    /// Checks lengths (RFC 5280 Appendix A upper bounds) and builds the DN in
    /// the order C, ST, L, O, OU, CN that openssl and certstrap use.
    pub fn to_dn(&self) -> Result<DistinguishedName, SubjectError> {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                return Err(SubjectError::Country { value: c.clone() });
            }
            // X520countryName is a PrintableString (RFC 5280 Appendix A).
            let value = c.to_ascii_uppercase().try_into().map_err(|_| SubjectError::Country { value: c.clone() })?;
            dn.push(DnType::CountryName, DnValue::PrintableString(value));
        }
        let fields = [
            (SubjectField::Province, &self.province, DnType::StateOrProvinceName, 128, "state-name"),
            (SubjectField::Locality, &self.locality, DnType::LocalityName, 128, "locality-name"),
            (SubjectField::Organization, &self.organization, DnType::OrganizationName, 64, "organization-name"),
            (
                SubjectField::OrganizationalUnit,
                &self.organizational_unit,
                DnType::OrganizationalUnitName,
                64,
                "organizational-unit-name",
            ),
            (SubjectField::CommonName, &self.common_name, DnType::CommonName, 64, "common-name"),
        ];
        for (field, value, ty, max, what) in fields {
            let Some(v) = value else { continue };
            let len = v.chars().count();
            if v.chars().any(char::is_control) {
                return Err(SubjectError::Control { field, value: v.clone() });
            }
            if len == 0 {
                return Err(SubjectError::Empty { field });
            }
            if len > max {
                return Err(SubjectError::TooLong { field, value: v.clone(), len, max, what });
            }
            dn.push(ty, DnValue::Utf8String(v.clone()));
        }
        Ok(dn)
    }
}

/// Copies a subject read from a CSR into rcgen's form, keeping each value's
/// string type. rcgen's `DistinguishedName` is a map, one value per
/// attribute type (it merges repeated attributes), and RFC 5280 §7.1 matches
/// names attribute by attribute, so subjects it cannot reproduce exactly are
/// refused rather than silently changed.
pub fn dn_from_x509(name: &X509Name<'_>, what: &str) -> Result<DistinguishedName, SubjectError> {
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(SubjectError::MultiValued { what: what.to_string() });
        };
        let oid = attr.attr_type().to_id_string();
        let label = x509_parser::objects::oid2sn(attr.attr_type(), x509_parser::objects::oid_registry())
            .map(str::to_string)
            .unwrap_or_else(|_| oid.clone());
        if seen.contains(&oid) {
            return Err(SubjectError::Repeated { what: what.to_string(), attr: label });
        }
        seen.push(oid);
        let components: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| SubjectError::StringType { what: what.to_string(), attr: label.clone() })?
            .collect();
        let data = attr.attr_value().data;
        let bad = || SubjectError::StringType { what: what.to_string(), attr: label.clone() };
        let text = || std::str::from_utf8(data).map_err(|_| bad());
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_string()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(|_| bad())?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(|_| bad())?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(|_| bad())?),
            Tag::BmpString => {
                DnValue::BmpString(rcgen::string::BmpString::from_utf16be(data.to_vec()).map_err(|_| bad())?)
            }
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(data.to_vec()).map_err(|_| bad())?,
            ),
            _ => return Err(bad()),
        };
        dn.push(DnType::from_oid(&components), value);
    }
    Ok(dn)
}

/// The common name of a parsed name, if any.
pub fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_dn_in_openssl_order_with_printable_country() {
        let s = Subject {
            common_name: Some("gRPC Root CA".into()),
            organization: Some("MyOrg".into()),
            country: Some("us".into()),
            ..Default::default()
        };
        let dn = s.to_dn().unwrap();
        let kinds: Vec<_> = dn.iter().map(|(t, _)| t.clone()).collect();
        assert_eq!(kinds, vec![DnType::CountryName, DnType::OrganizationName, DnType::CommonName]);
        assert!(matches!(dn.get(&DnType::CountryName), Some(DnValue::PrintableString(_))));
    }

    #[test]
    fn refuses_control_characters() {
        let s = Subject { common_name: Some("bank.com\0.evil.com".into()), ..Default::default() };
        assert!(matches!(s.to_dn(), Err(SubjectError::Control { .. })));
    }

    #[test]
    fn refuses_bad_country_and_overlong_cn() {
        let bad_c = Subject { country: Some("USA".into()), ..Default::default() };
        assert!(matches!(bad_c.to_dn(), Err(SubjectError::Country { .. })));
        let long_cn = Subject { common_name: Some("x".repeat(65)), ..Default::default() };
        assert!(matches!(long_cn.to_dn(), Err(SubjectError::TooLong { max: 64, .. })));
        let empty = Subject { organization: Some(String::new()), ..Default::default() };
        assert!(matches!(empty.to_dn(), Err(SubjectError::Empty { .. })));
    }

    #[test]
    fn errors_name_the_attribute_or_what_the_caller_calls_it() {
        let empty = Subject { organization: Some(String::new()), ..Default::default() }.to_dn().unwrap_err();
        assert_eq!(empty.to_string(), "organizationName is empty; give a value or leave it out");
        let flag = |f: SubjectField| if f == SubjectField::Organization { "--organization" } else { "?" };
        assert_eq!(empty.naming(flag), "--organization is empty; give a value or leave the flag out");
        let long_cn = Subject { common_name: Some("x".repeat(65)), ..Default::default() }.to_dn().unwrap_err();
        assert!(long_cn.to_string().starts_with("commonName \"xxx"), "{long_cn}");
    }
}
