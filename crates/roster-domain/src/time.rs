//! Timestamps: stored as milliseconds since the Unix epoch, shown as ISO-8601 with a `Z` suffix.
//!
//! Integers sort and compare the same on SQLite and PostgreSQL, and Auth0 clients (auth0-python ≥ 5.8
//! parses dates) expect `2026-11-26T06:19:46.123Z`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Self(ms)
    }
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// `2026-11-26T06:19:46.123Z`
    pub fn to_iso(self) -> String {
        match self.iso_digits() {
            Some(b) => b.iter().map(|&c| char::from(c)).collect(),
            None => self.to_iso_slow(),
        }
    }

    /// The ISO form written digit by digit into a stack buffer: a user carries three or four dates,
    /// and `format!` was a visible part of serializing one. `None` outside the years 0–9999.
    fn iso_digits(self) -> Option<[u8; 24]> {
        fn put(b: &mut [u8; 24], at: usize, width: usize, mut v: u32) {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        let dt = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()?;
        let year = u32::try_from(dt.year()).ok().filter(|y| *y <= 9999)?;
        let mut b = *b"0000-00-00T00:00:00.000Z";
        put(&mut b, 0, 4, year);
        put(&mut b, 5, 2, u32::from(u8::from(dt.month())));
        put(&mut b, 8, 2, u32::from(dt.day()));
        put(&mut b, 11, 2, u32::from(dt.hour()));
        put(&mut b, 14, 2, u32::from(dt.minute()));
        put(&mut b, 17, 2, u32::from(dt.second()));
        put(&mut b, 20, 3, u32::from(dt.millisecond()));
        Some(b)
    }

    fn to_iso_slow(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => {
                let (y, mo, d) = (dt.year(), u8::from(dt.month()), dt.day());
                format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", dt.hour(), dt.minute(), dt.second(), dt.millisecond())
            }
            Err(_) => "1970-01-01T00:00:00.000Z".to_owned(),
        }
    }
    pub fn parse_iso(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        Some(Self((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.iso_digits() {
            // ASCII digits and separators only: always UTF-8.
            Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
            None => s.serialize_str(&self.to_iso_slow()),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_iso(&s).ok_or_else(|| serde::de::Error::custom("expected an ISO-8601 date"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        let t = Timestamp::from_millis(1_795_674_786_123);
        let s = t.to_iso();
        assert_eq!(s, "2026-11-26T06:33:06.123Z");
        assert_eq!(Timestamp::parse_iso(&s), Some(t));
    }

    /// The digit-by-digit form equals `format!`'s for every kind of date, and serializes the same.
    #[test]
    fn fast_iso_equals_formatted() {
        let mut cases = vec![0, 1, 999, -1, -86_400_000, 951_782_400_000, 253_402_300_799_999, 1_795_674_786_123];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x % 253_402_300_800_000) as i64);
        }
        for ms in cases {
            let t = Timestamp::from_millis(ms);
            assert_eq!(t.to_iso(), t.to_iso_slow(), "{ms}");
            assert_eq!(serde_json::to_string(&t).expect("json"), format!("\"{}\"", t.to_iso_slow()));
        }
        // Beyond year 9999 the formatted form is used.
        let far = Timestamp::from_millis(253_402_300_800_000);
        assert!(far.iso_digits().is_none());
        assert_eq!(far.to_iso(), far.to_iso_slow());
    }
}
