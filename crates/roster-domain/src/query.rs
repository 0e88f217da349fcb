//! User listing: the search query (`q`), sort and paging, parsed into a small AST the store translates.
//!
//! This is the subset of Auth0's Lucene syntax that issue 2 promises: `field:value` and
//! `field:"quoted value"` terms joined by whitespace or `AND`. Anything else (OR, NOT, ranges,
//! wildcards, parentheses) is refused with a clear message rather than silently misread. The parser is
//! iterative and bounded, so hostile input costs linear time.

use crate::error::ValidationError;

/// Longest `q` accepted (Auth0 answers 414 for long queries; we answer 400 before parsing).
pub const MAX_QUERY_LEN: usize = 4096;
/// Most results any listing can page through (Auth0's limit).
pub const MAX_RESULT_WINDOW: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterField {
    Email,
    UserId,
    Blocked,
    EmailVerified,
    Username,
    Name,
    Nickname,
    GivenName,
    FamilyName,
    PhoneNumber,
    Connection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    Text(String),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: FilterField,
    pub value: FilterValue,
}

/// Terms joined with AND.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserQuery {
    pub filters: Vec<Filter>,
}

impl FilterField {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Self::Email,
            "user_id" => Self::UserId,
            "blocked" => Self::Blocked,
            "email_verified" => Self::EmailVerified,
            "username" => Self::Username,
            "name" => Self::Name,
            "nickname" => Self::Nickname,
            "given_name" => Self::GivenName,
            "family_name" => Self::FamilyName,
            "phone_number" => Self::PhoneNumber,
            "identities.connection" | "connection" => Self::Connection,
            _ => return None,
        })
    }
    fn is_bool(self) -> bool {
        matches!(self, Self::Blocked | Self::EmailVerified)
    }
    /// Fields Auth0 matches case-insensitively.
    pub fn case_insensitive(self) -> bool {
        matches!(self, Self::Email | Self::Name | Self::GivenName | Self::FamilyName | Self::Nickname | Self::Username)
    }
}

impl UserQuery {
    pub fn parse(q: &str) -> Result<Self, ValidationError> {
        if q.len() > MAX_QUERY_LEN {
            return Err(ValidationError::new(format!("Query is too long (the limit is {MAX_QUERY_LEN} characters).")));
        }
        let mut filters = Vec::new();
        let mut rest = q.trim_start();
        let mut expect_term = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("AND").filter(|r| r.is_empty() || r.starts_with(char::is_whitespace)) {
                if expect_term {
                    return Err(ValidationError::new("Query syntax error: 'AND' must join two terms."));
                }
                rest = r.trim_start();
                expect_term = true;
                continue;
            }
            for kw in ["OR", "NOT"] {
                if rest.starts_with(kw) && rest[kw.len()..].starts_with(char::is_whitespace) {
                    return Err(ValidationError::new(format!(
                        "Query syntax error: '{kw}' is not supported yet; join terms with AND."
                    )));
                }
            }
            let (term, r) = take_term(rest)?;
            filters.push(term);
            rest = r.trim_start();
            expect_term = false;
        }
        if expect_term && !filters.is_empty() {
            return Err(ValidationError::new("Query syntax error: 'AND' must join two terms."));
        }
        Ok(Self { filters })
    }
}

fn take_term(s: &str) -> Result<(Filter, &str), ValidationError> {
    let colon = s.find(':').ok_or_else(|| ValidationError::new("Query syntax error: expected field:value."))?;
    let name = &s[..colon];
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(ValidationError::new("Query syntax error: expected field:value."));
    }
    let field = FilterField::parse(name).ok_or_else(|| {
        ValidationError::new(format!("Query syntax error: searching by field '{}' is not supported.", name.escape_debug()))
    })?;
    let after = &s[colon + 1..];
    let (raw, rest) = if let Some(quoted) = after.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                '"' => {
                    end = Some(i + 1);
                    break;
                }
                c => out.push(c),
            }
        }
        let end = end.ok_or_else(|| ValidationError::new("Query syntax error: unterminated quoted value."))?;
        (out, &quoted[end..])
    } else {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let v = &after[..end];
        if v.is_empty() {
            return Err(ValidationError::new("Query syntax error: empty value."));
        }
        if v.contains(['*', '?', '[', ']', '{', '}', '(', ')']) {
            return Err(ValidationError::new("Query syntax error: wildcards, ranges and groups are not supported yet."));
        }
        (v.to_owned(), &after[end..])
    };
    let value = if field.is_bool() {
        match raw.as_str() {
            "true" => FilterValue::Bool(true),
            "false" => FilterValue::Bool(false),
            _ => return Err(ValidationError::new(format!("Query syntax error: '{name}' takes true or false."))),
        }
    } else {
        FilterValue::Text(if field.case_insensitive() { raw.to_lowercase() } else { raw })
    };
    Ok((Filter { field, value }, rest))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    LastLogin,
    LoginsCount,
    Email,
    Name,
    Nickname,
    GivenName,
    FamilyName,
    Username,
    UserId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Self { field: SortField::CreatedAt, descending: false }
    }
}

impl Sort {
    /// `field:1` (ascending) or `field:-1` (descending).
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = || ValidationError::new("Invalid sort: use field:1 or field:-1 with a sortable field.");
        let (name, dir) = s.split_once(':').ok_or_else(err)?;
        let field = match name {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "last_login" => SortField::LastLogin,
            "logins_count" => SortField::LoginsCount,
            "email" => SortField::Email,
            "name" => SortField::Name,
            "nickname" => SortField::Nickname,
            "given_name" => SortField::GivenName,
            "family_name" => SortField::FamilyName,
            "username" => SortField::Username,
            "user_id" => SortField::UserId,
            _ => return Err(err()),
        };
        let descending = match dir {
            "1" => false,
            "-1" => true,
            _ => return Err(err()),
        };
        Ok(Self { field, descending })
    }
}

/// A page of a listing, already checked against Auth0's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagingError {
    PerPage,
    Window,
}

impl Page {
    pub const DEFAULT_PER_PAGE: u32 = 50;
    pub const MAX_PER_PAGE: u32 = 100;

    pub fn new(page: Option<u32>, per_page: Option<u32>) -> Result<Self, PagingError> {
        let page = page.unwrap_or(0);
        let per_page = per_page.unwrap_or(Self::DEFAULT_PER_PAGE);
        if per_page > Self::MAX_PER_PAGE {
            return Err(PagingError::PerPage);
        }
        if u64::from(page) * u64::from(per_page) >= u64::from(MAX_RESULT_WINDOW) && per_page > 0 {
            return Err(PagingError::Window);
        }
        Ok(Self { page, per_page })
    }
    pub fn offset(self) -> u32 {
        self.page * self.per_page
    }
    /// Rows to fetch: never past the 1,000-result window.
    pub fn limit(self) -> u32 {
        self.per_page.min(MAX_RESULT_WINDOW.saturating_sub(self.offset()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_terms() {
        let q = UserQuery::parse(r#"email:"A@B.com" AND blocked:false email_verified:true"#).expect("valid");
        assert_eq!(
            q.filters,
            vec![
                Filter { field: FilterField::Email, value: FilterValue::Text("a@b.com".into()) },
                Filter { field: FilterField::Blocked, value: FilterValue::Bool(false) },
                Filter { field: FilterField::EmailVerified, value: FilterValue::Bool(true) },
            ]
        );
        let q = UserQuery::parse(r#"user_id:"auth0|abc""#).expect("valid");
        assert_eq!(q.filters[0].value, FilterValue::Text("auth0|abc".into()));
        assert_eq!(UserQuery::parse("").expect("empty").filters, vec![]);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "email",
            "foo:bar",
            "email:\"unterminated",
            "blocked:maybe",
            "a:b OR c:d",
            "AND",
            "email:x AND",
            "name:jo*",
            "logins_count:[1 TO 2]",
        ] {
            assert!(UserQuery::parse(bad).is_err(), "{bad}");
        }
        assert!(UserQuery::parse(&"a".repeat(MAX_QUERY_LEN + 1)).is_err());
    }

    #[test]
    fn quoted_values_keep_escapes_and_spaces() {
        let q = UserQuery::parse(r#"name:"Jane \"JD\" Doe""#).expect("valid");
        assert_eq!(q.filters[0].value, FilterValue::Text("jane \"jd\" doe".into()));
    }

    #[test]
    fn paging_window() {
        assert!(Page::new(Some(9), Some(100)).is_ok());
        assert_eq!(Page::new(Some(10), Some(100)), Err(PagingError::Window));
        assert_eq!(Page::new(Some(0), Some(101)), Err(PagingError::PerPage));
        let p = Page::new(Some(33), Some(30)).expect("starts before 1000");
        assert_eq!((p.offset(), p.limit()), (990, 10));
    }

    #[test]
    fn sort() {
        assert_eq!(Sort::parse("created_at:-1"), Ok(Sort { field: SortField::CreatedAt, descending: true }));
        assert!(Sort::parse("password:1").is_err());
        assert!(Sort::parse("email:2").is_err());
    }
}
