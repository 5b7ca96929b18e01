//! The facts eventhub reads from a certificate itself: when it stops
//! being valid (start-up refuses an expired certificate, and `/metrics`
//! counts down to it), when it starts, and its subject's common name (the
//! name a verified client certificate stands for).
//!
//! rustls checks the chain and the key; it does not say when a served
//! certificate expires, and a full X.509 parser is a large dependency for
//! one field. The validity sits at a fixed place in DER
//! (RFC 5280, section 4.1): `Certificate ::= SEQUENCE { tbsCertificate
//! SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
//! validity SEQUENCE { notBefore, notAfter }, ... } ... }`, so a walk over
//! a few tag-length-value headers reaches it.

use crate::civil::{civil_from_days, days_from_civil};

/// A certificate's validity, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// Why the validity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("truncated DER")]
    Truncated,
    #[error("unexpected DER tag {found:#04x} where {wanted} was expected")]
    Tag { found: u8, wanted: &'static str },
    #[error("DER length not in the shortest form or too large")]
    Length,
    #[error("malformed validity time {0:?}")]
    Time(String),
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
/// 2.5.4.3, DER-encoded.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads the validity of a DER certificate.
pub fn validity(der: &[u8]) -> Result<Validity, X509Error> {
    let mut tbs = tbs_after_version(der)?;
    tbs = expect(tbs, INTEGER, "serialNumber")?.1;
    tbs = expect(tbs, SEQUENCE, "signature")?.1;
    tbs = expect(tbs, SEQUENCE, "issuer")?.1;
    let (validity, _) = expect(tbs, SEQUENCE, "validity")?;
    let (before_tag, before, rest) = tlv(validity)?;
    let (after_tag, after, _) = tlv(rest)?;
    Ok(Validity {
        not_before: time(before_tag, before)?,
        not_after: time(after_tag, after)?,
    })
}

/// The subject's common name (OID 2.5.4.3), if the certificate has one in
/// a string type: the name a client certificate gives its holder.
pub fn subject_common_name(der: &[u8]) -> Result<Option<String>, X509Error> {
    let mut tbs = tbs_after_version(der)?;
    for wanted in ["serialNumber", "signature", "issuer", "validity"] {
        tbs = tlv(tbs).map_err(|_| X509Error::Tag { found: 0, wanted })?.2;
    }
    let (mut rdns, _) = expect(tbs, SEQUENCE, "subject")?;
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET, "RelativeDistinguishedName")?;
        rdns = rest;
        while !set.is_empty() {
            let (attr, rest) = expect(set, SEQUENCE, "AttributeTypeAndValue")?;
            set = rest;
            let (oid, value) = expect(attr, OID, "AttributeType")?;
            if oid != COMMON_NAME {
                continue;
            }
            let (tag, text, _) = tlv(value)?;
            return Ok(match tag {
                UTF8_STRING | PRINTABLE_STRING | IA5_STRING | T61_STRING => {
                    Some(String::from_utf8_lossy(text).into_owned())
                }
                _ => None,
            });
        }
    }
    Ok(None)
}

/// The fields of the TBSCertificate from its serial number on.
fn tbs_after_version(der: &[u8]) -> Result<&[u8], X509Error> {
    let (cert, _) = expect(der, SEQUENCE, "Certificate")?;
    let (tbs, _) = expect(cert, SEQUENCE, "TBSCertificate")?;
    if tbs.first() == Some(&VERSION) {
        return Ok(tlv(tbs)?.2);
    }
    Ok(tbs)
}

/// One TLV of tag `tag`: its contents and what follows it.
fn expect<'a>(
    der: &'a [u8],
    tag: u8,
    wanted: &'static str,
) -> Result<(&'a [u8], &'a [u8]), X509Error> {
    let (found, value, rest) = tlv(der)?;
    if found != tag {
        return Err(X509Error::Tag { found, wanted });
    }
    Ok((value, rest))
}

/// Splits one tag-length-value: (tag, value, rest).
fn tlv(der: &[u8]) -> Result<(u8, &[u8], &[u8]), X509Error> {
    let (&tag, der) = der.split_first().ok_or(X509Error::Truncated)?;
    let (&first, mut der) = der.split_first().ok_or(X509Error::Truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || der.len() < count {
            return Err(X509Error::Length);
        }
        let mut len = 0usize;
        for &b in &der[..count] {
            len = len << 8 | usize::from(b);
        }
        der = &der[count..];
        if len < 0x80 {
            return Err(X509Error::Length);
        }
        len
    };
    if der.len() < len {
        return Err(X509Error::Truncated);
    }
    let (value, rest) = der.split_at(len);
    Ok((tag, value, rest))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 section 4.1.2.5 allows them.
fn time(tag: u8, value: &[u8]) -> Result<i64, X509Error> {
    let bad = || X509Error::Time(String::from_utf8_lossy(value).into_owned());
    let digits = match (tag, value.split_last()) {
        (UTC_TIME | GENERALIZED_TIME, Some((b'Z', digits))) => digits,
        _ => return Err(bad()),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let num = |s: &[u8]| s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = num(&digits[..2]);
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return Err(bad()),
    };
    let field = |i: usize| num(&rest[2 * i..2 * i + 2]);
    let (month, day, hour, minute, second) = (field(0), field(1), field(2), field(3), field(4));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`, for messages and logs.
pub fn format_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_formatted() {
        assert_eq!(format_utc(1_796_083_199), "2026-11-30 23:59:59 UTC");
    }

    #[test]
    fn both_time_forms_are_read() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(
            time(GENERALIZED_TIME, b"20500101000000Z"),
            Ok(2_524_608_000)
        );
        assert!(time(UTC_TIME, b"700101000000").is_err());
        assert!(time(UTC_TIME, b"701301000000Z").is_err());
        assert!(time(0x04, b"700101000000Z").is_err());
    }

    #[test]
    fn a_generated_certificate_reads_back_its_dates() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 7, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let v = validity(cert.der()).unwrap();
        assert_eq!(v.not_before, days_from_civil(2024, 2, 29) * 86_400);
        assert_eq!(v.not_after, days_from_civil(2051, 7, 4) * 86_400);
    }

    #[test]
    fn the_subject_common_name_is_read_and_absent_when_there_is_none() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "ops");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dashboard");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_common_name(cert.der()).unwrap().as_deref(),
            Some("dashboard")
        );
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_common_name(cert.der()).unwrap(), None);
        assert!(subject_common_name(b"\x30\x03\x30\x01\x00").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for der in [
            &b""[..],
            b"\x30",
            b"\x30\x81\x05",
            b"\x30\x02\x02\x00",
            b"\x31\x00",
        ] {
            assert!(validity(der).is_err(), "{der:?}");
        }
    }
}
