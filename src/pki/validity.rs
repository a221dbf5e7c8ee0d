//! Validity periods: certstrap's `--expires` grammar ("1 year 6 months"),
//! explicit RFC 3339 bounds, and the rules that turn them into notBefore and
//! notAfter.

use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, Month, OffsetDateTime};

/// How far notBefore is backdated when the user does not set it, so that a
/// peer whose clock runs a little behind still accepts a fresh certificate
/// (certstrap uses the same 10 minutes).
pub const BACKDATE: Duration = Duration::minutes(10);

/// A span written in certstrap's grammar: `N unit` pairs, where unit is
/// second, minute, hour, day, week, month or year, optionally plural. Months
/// and years are calendar months, so "1 year" from 29 Feb lands on 28 Feb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expiry {
    pub months: u32,
    pub seconds: u64,
}

/// The parts of a validity request, as [`ValidityError`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityField {
    /// How long the certificate lives (an [`Expiry`]).
    Lifetime,
    NotBefore,
    NotAfter,
}

impl ValidityField {
    /// The field in words: "lifetime", and RFC 5280's "notBefore" and
    /// "notAfter".
    pub fn noun(self) -> &'static str {
        match self {
            ValidityField::Lifetime => "lifetime",
            ValidityField::NotBefore => "notBefore",
            ValidityField::NotAfter => "notAfter",
        }
    }
}

/// Why a validity input was refused. Its `Display` names the fields in
/// words; [`ValidityError::naming`] names them as the caller does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidityError {
    Empty {
        input: String,
    },
    Grammar {
        input: String,
        what: String,
    },
    Zero {
        input: String,
    },
    TooLong {
        input: String,
    },
    /// Not an RFC 3339 time; `what` is the name [`parse_rfc3339`] was given.
    BadTime {
        what: &'static str,
        input: String,
    },
    Inverted {
        not_before: String,
        not_after: String,
    },
}

impl ValidityError {
    /// The message with each field named by `name`, e.g. a command-line
    /// flag (`--expires "soon": …`) or a plan key (`validity "soon": …`).
    pub fn naming(&self, name: impl Fn(ValidityField) -> &'static str) -> String {
        let life = name(ValidityField::Lifetime);
        match self {
            ValidityError::Empty { input } => format!("{life} {input:?} is empty; write e.g. \"2 years\", \"18 months\", \"1 year 6 months\", \"90 days\" or \"12 hours\""),
            ValidityError::Grammar { input, what } => format!("{life} {input:?}: {what}; write `N unit` pairs such as \"1 year 6 months\", \"90 days\" or \"12 hours\" (units: second, minute, hour, day, week, month, year)"),
            ValidityError::Zero { input } => format!("{life} {input:?} adds up to nothing; give a positive length such as \"90 days\""),
            ValidityError::TooLong { input } => format!("{life} {input:?} is too long; certificates cannot outlive the year 9999"),
            ValidityError::BadTime { what, input } => format!("{what} {input:?} is not an RFC 3339 time; write e.g. 2026-01-31T12:00:00Z"),
            ValidityError::Inverted { not_before, not_after } => format!(
                "{} {not_after} is not after {} {not_before}; a certificate needs a positive validity period",
                name(ValidityField::NotAfter),
                name(ValidityField::NotBefore)
            ),
        }
    }
}

impl std::fmt::Display for ValidityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.naming(ValidityField::noun))
    }
}

impl std::error::Error for ValidityError {}

impl Expiry {
    /// Parses certstrap's grammar. Also accepts compact forms such as `90d`,
    /// `12h` or `2y`; a bare `m` is refused because it could mean minutes or
    /// months.
    ///
    /// ```
    /// use certforge::pki::validity::Expiry;
    /// assert_eq!(Expiry::parse("1 year 6 months").unwrap(), Expiry { months: 18, seconds: 0 });
    /// assert_eq!(Expiry::parse("90d").unwrap(), Expiry { months: 0, seconds: 90 * 86_400 });
    /// assert!(Expiry::parse("5m").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Expiry, ValidityError> {
        let grammar = |what: String| ValidityError::Grammar { input: input.to_string(), what };
        let tokens = split_tokens(input);
        if tokens.is_empty() {
            return Err(ValidityError::Empty { input: input.to_string() });
        }
        let mut out = Expiry::default();
        let mut i = 0;
        while i < tokens.len() {
            let n: u64 =
                tokens[i].parse().map_err(|_| grammar(format!("expected a whole number, found {:?}", tokens[i])))?;
            let unit = tokens.get(i + 1).ok_or_else(|| grammar(format!("the number {n} has no unit")))?;
            let too_long = || ValidityError::TooLong { input: input.to_string() };
            match unit_of(unit).ok_or_else(|| grammar(unknown_unit(unit)))? {
                Unit::Months(m) => {
                    let add = u32::try_from(n.checked_mul(m).ok_or_else(too_long)?).map_err(|_| too_long())?;
                    out.months = out.months.checked_add(add).ok_or_else(too_long)?;
                }
                Unit::Seconds(s) => {
                    out.seconds = n.checked_mul(s).and_then(|v| v.checked_add(out.seconds)).ok_or_else(too_long)?;
                }
            }
            i += 2;
        }
        if out.months == 0 && out.seconds == 0 {
            return Err(ValidityError::Zero { input: input.to_string() });
        }
        // 8000 years is past year 9999 from any present date.
        if out.months > 8000 * 12 || out.seconds > 8000 * 366 * 86_400 {
            return Err(ValidityError::TooLong { input: input.to_string() });
        }
        Ok(out)
    }

    /// Adds this span to `start`, calendar months first, then seconds.
    pub fn after(&self, start: OffsetDateTime) -> Option<OffsetDateTime> {
        let moved = add_months(start, self.months)?;
        let secs = i64::try_from(self.seconds).ok()?;
        let end = moved.checked_add(Duration::seconds(secs))?;
        (end.year() <= 9999).then_some(end)
    }
}

enum Unit {
    Months(u64),
    Seconds(u64),
}

fn unit_of(word: &str) -> Option<Unit> {
    let w = word.to_ascii_lowercase();
    let base = w.strip_suffix('s').filter(|b| b.len() > 1).unwrap_or(&w);
    Some(match base {
        "second" | "sec" => Unit::Seconds(1),
        "minute" | "min" => Unit::Seconds(60),
        "hour" | "h" | "hr" => Unit::Seconds(3600),
        "day" | "d" => Unit::Seconds(86_400),
        "week" | "w" => Unit::Seconds(7 * 86_400),
        "month" | "mo" => Unit::Months(1),
        "year" | "y" | "yr" => Unit::Months(12),
        "s" => Unit::Seconds(1),
        _ => return None,
    })
}

fn unknown_unit(unit: &str) -> String {
    if unit.eq_ignore_ascii_case("m") {
        "the unit \"m\" is ambiguous: write \"min\" for minutes or \"mo\" for months".to_string()
    } else {
        format!("unknown unit {unit:?}")
    }
}

/// Splits "1 year 6months" and "90d" into ["1","year","6","months"], ["90","d"].
fn split_tokens(input: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for word in input.split(|c: char| c.is_whitespace() || c == ',') {
        let mut cur = String::new();
        let mut cur_digit = None;
        for c in word.chars() {
            let is_digit = c.is_ascii_digit();
            if cur_digit.is_some_and(|d| d != is_digit) {
                tokens.push(std::mem::take(&mut cur));
            }
            cur.push(c);
            cur_digit = Some(is_digit);
        }
        if !cur.is_empty() {
            tokens.push(cur);
        }
    }
    tokens
}

fn add_months(t: OffsetDateTime, months: u32) -> Option<OffsetDateTime> {
    if months == 0 {
        return Some(t);
    }
    let total = i64::from(t.year()) * 12 + i64::from(u8::from(t.month()) - 1) + i64::from(months);
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

/// Parses an RFC 3339 time; `what` names it in the error, as the caller
/// calls it (a flag, a JSON field).
pub fn parse_rfc3339(what: &'static str, input: &str) -> Result<OffsetDateTime, ValidityError> {
    OffsetDateTime::parse(input, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| ValidityError::BadTime { what, input: input.to_string() })
}

impl std::fmt::Display for Expiry {
    /// Back in the grammar it was parsed from: "2 years", "1 year 6 months",
    /// "10 days", "36 hours".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let mut part = |n: u64, unit: &str| {
            if n > 0 {
                parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
            }
        };
        part(u64::from(self.months / 12), "year");
        part(u64::from(self.months % 12), "month");
        let s = self.seconds;
        // Whole days read best; hours only when the span is not whole days.
        if s.is_multiple_of(86_400) {
            part(s / 86_400, "day");
        } else if s.is_multiple_of(3600) {
            part(s / 3600, "hour");
        } else if s.is_multiple_of(60) {
            part(s / 60, "minute");
        } else {
            part(s, "second");
        }
        if parts.is_empty() {
            return f.write_str("0 seconds");
        }
        f.write_str(&parts.join(" "))
    }
}

/// A resolved validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// What the user asked for; `resolve` turns it into a [`Validity`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidityRequest {
    pub expires: Option<Expiry>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

impl ValidityRequest {
    /// notBefore is the given time, else `now` less [`BACKDATE`]. notAfter is
    /// the given time, else notBefore (or now, when notBefore was not given,
    /// as certstrap counts) plus the expiry, else plus `default`.
    pub fn resolve(&self, now: OffsetDateTime, default: Expiry) -> Result<Validity, ValidityError> {
        let not_before = self.not_before.unwrap_or(now - BACKDATE);
        let not_after = match self.not_after {
            Some(t) => t,
            None => {
                let span = self.expires.unwrap_or(default);
                let start = self.not_before.unwrap_or(now);
                span.after(start).ok_or_else(|| ValidityError::TooLong { input: format!("{span:?}") })?
            }
        };
        if not_after <= not_before {
            return Err(ValidityError::Inverted { not_before: fmt_time(not_before), not_after: fmt_time(not_after) });
        }
        Ok(Validity { not_before, not_after })
    }
}

/// RFC 3339 text for a time, in UTC, to the second.
pub fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// "in 729 days", "in 5 hours", "3 days ago": how far `t` is from `now`.
pub fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let d = t - now;
    let (abs, future) = if d.is_negative() { (-d, false) } else { (d, true) };
    let text = if abs.whole_days() >= 2 {
        format!("{} days", abs.whole_days())
    } else if abs.whole_hours() >= 2 {
        format!("{} hours", abs.whole_hours())
    } else {
        format!("{} minutes", abs.whole_minutes())
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn spans_print_back_in_their_grammar() {
        for text in ["2 years", "1 year 6 months", "10 days", "36 hours", "90 minutes", "1 month 1 day"] {
            assert_eq!(Expiry::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Expiry { months: 0, seconds: 3601 }.to_string(), "3601 seconds");
    }

    #[test]
    fn parses_certstrap_grammar() {
        assert_eq!(Expiry::parse("2 years").unwrap(), Expiry { months: 24, seconds: 0 });
        assert_eq!(Expiry::parse("18 months").unwrap(), Expiry { months: 18, seconds: 0 });
        assert_eq!(Expiry::parse("1 year 6 months").unwrap(), Expiry { months: 18, seconds: 0 });
        assert_eq!(Expiry::parse("90 days").unwrap(), Expiry { months: 0, seconds: 90 * 86_400 });
        assert_eq!(Expiry::parse("12 hours").unwrap(), Expiry { months: 0, seconds: 12 * 3600 });
        assert_eq!(
            Expiry::parse("1 year 2 days 3 months 4 hours").unwrap(),
            Expiry { months: 15, seconds: 2 * 86_400 + 4 * 3600 }
        );
        assert_eq!(Expiry::parse("1 Day").unwrap(), Expiry { months: 0, seconds: 86_400 });
    }

    #[test]
    fn errors_name_the_fields_in_words_or_as_the_caller_does() {
        let e = Expiry::parse("soon").unwrap_err();
        assert!(e.to_string().starts_with("lifetime \"soon\": expected a whole number"), "{e}");
        let flag = |f: ValidityField| if f == ValidityField::Lifetime { "--expires" } else { "--not-after" };
        assert!(e.naming(flag).starts_with("--expires \"soon\": expected a whole number"));
        let now = datetime!(2026-01-02 00:00 UTC);
        let bad = ValidityRequest { not_before: Some(now), not_after: Some(now), expires: None };
        let e = bad.resolve(now, Expiry::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "notAfter 2026-01-02T00:00:00Z is not after notBefore 2026-01-02T00:00:00Z; a certificate needs a positive validity period"
        );
    }

    #[test]
    fn parses_compact_forms() {
        assert_eq!(Expiry::parse("90d").unwrap(), Expiry { months: 0, seconds: 90 * 86_400 });
        assert_eq!(Expiry::parse("2y").unwrap(), Expiry { months: 24, seconds: 0 });
        assert_eq!(Expiry::parse("30 min").unwrap(), Expiry { months: 0, seconds: 1800 });
    }

    #[test]
    fn rejects_bad_expiry() {
        for bad in [
            "",
            "   ",
            "two years",
            "2",
            "2 fortnights",
            "years 2",
            "-1 day",
            "0 days",
            "5m",
            "1.5 years",
            "99999999999999999999 days",
            "9000 years",
        ] {
            assert!(Expiry::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let msg = Expiry::parse("5m").unwrap_err().to_string();
        assert!(msg.contains("ambiguous"), "{msg}");
    }

    #[test]
    fn months_clamp_to_the_end_of_the_month() {
        let e = Expiry { months: 1, seconds: 0 };
        assert_eq!(e.after(datetime!(2026-01-31 10:00 UTC)).unwrap(), datetime!(2026-02-28 10:00 UTC));
        let y = Expiry { months: 12, seconds: 0 };
        assert_eq!(y.after(datetime!(2028-02-29 00:00 UTC)).unwrap(), datetime!(2029-02-28 00:00 UTC));
    }

    #[test]
    fn resolve_backdates_and_applies_defaults() {
        let now = datetime!(2026-11-21 12:00 UTC);
        let v = ValidityRequest::default().resolve(now, Expiry { months: 24, seconds: 0 }).unwrap();
        assert_eq!(v.not_before, datetime!(2026-11-21 11:50 UTC));
        assert_eq!(v.not_after, datetime!(2028-11-21 12:00 UTC));
    }

    #[test]
    fn resolve_honours_explicit_bounds_and_refuses_inverted_ones() {
        let now = datetime!(2026-11-21 12:00 UTC);
        let nb = datetime!(2020-01-01 00:00 UTC);
        let req =
            ValidityRequest { not_before: Some(nb), expires: Some(Expiry::parse("1 day").unwrap()), not_after: None };
        let v = req.resolve(now, Expiry::default()).unwrap();
        assert_eq!((v.not_before, v.not_after), (nb, datetime!(2020-01-02 00:00 UTC)));
        let bad = ValidityRequest { not_before: Some(nb), not_after: Some(nb), expires: None };
        assert!(matches!(bad.resolve(now, Expiry::default()), Err(ValidityError::Inverted { .. })));
    }

    #[test]
    fn rfc3339_is_parsed_and_errors_name_the_flag() {
        assert_eq!(parse_rfc3339("--not-after", "2026-01-31T12:00:00+01:00").unwrap(), datetime!(2026-01-31 11:00 UTC));
        let e = parse_rfc3339("--not-after", "tomorrow").unwrap_err().to_string();
        assert!(e.contains("--not-after") && e.contains("tomorrow"), "{e}");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = datetime!(2026-11-21 12:00 UTC);
        assert_eq!(relative(datetime!(2028-11-20 12:00 UTC), now), "in 730 days");
        assert_eq!(relative(datetime!(2026-11-18 12:00 UTC), now), "3 days ago");
    }
}
