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
        s.serialize_str(&self.to_iso())
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
}
