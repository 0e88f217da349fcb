//! Management API scopes: the names Auth0 uses, and the set a tenant's management client receives.

/// Every Management API scope Roster knows. The tenant's management client is granted all of them.
pub const MANAGEMENT_SCOPES: &[&str] = &[
    "read:users",
    "update:users",
    "delete:users",
    "create:users",
    "read:users_app_metadata",
    "update:users_app_metadata",
    "delete:users_app_metadata",
    "create:users_app_metadata",
    "read:user_idp_tokens",
    "create:user_tickets",
    "read:clients",
    "update:clients",
    "delete:clients",
    "create:clients",
    "read:client_grants",
    "update:client_grants",
    "delete:client_grants",
    "create:client_grants",
    "read:connections",
    "update:connections",
    "delete:connections",
    "create:connections",
    "read:logs",
    "read:logs_users",
    "read:email_provider",
    "update:email_provider",
    "delete:email_provider",
    "create:email_provider",
    "read:email_templates",
    "update:email_templates",
    "create:email_templates",
    "read:attack_protection",
    "update:attack_protection",
    "read:anomaly_blocks",
    "delete:anomaly_blocks",
    "read:stats",
    "read:tenant_settings",
    "update:tenant_settings",
    "read:branding",
    "update:branding",
    "read:keys",
    "update:keys",
    "create:signing_keys",
    "read:signing_keys",
    "update:signing_keys",
];

/// Scopes a user-scoped Management token may carry (issued to end users for their own profile).
pub const CURRENT_USER_SCOPES: &[&str] =
    &["read:current_user", "update:current_user_metadata", "create:current_user_metadata", "delete:current_user_metadata"];

/// Current-user scopes granted only when asked for by name (never by default): deleting one's own
/// account through an app.
pub const CURRENT_USER_OPT_IN: &[&str] = &["delete:current_user"];

/// A space-separated scope string as carried in a token, parsed into a sorted, de-duplicated list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(s: &str) -> Self {
        let mut v: Vec<String> = s.split_ascii_whitespace().map(str::to_owned).collect();
        v.sort();
        v.dedup();
        Self(v)
    }
    pub fn from_list<I: IntoIterator<Item = S>, S: Into<String>>(it: I) -> Self {
        let mut v: Vec<String> = it.into_iter().map(Into::into).collect();
        v.sort();
        v.dedup();
        Self(v)
    }
    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|s| s.as_str().cmp(scope)).is_ok()
    }
    pub fn contains_any(&self, any_of: &[&str]) -> bool {
        any_of.iter().any(|s| self.contains(s))
    }
    /// The scopes of `self` that `requested` also names.
    pub fn intersect(&self, requested: &Scopes) -> Scopes {
        Scopes(self.0.iter().filter(|s| requested.contains(s)).cloned().collect())
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn to_space_separated(&self) -> String {
        self.0.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_intersect() {
        let granted = Scopes::from_list(["read:users", "update:users"]);
        let req = Scopes::parse("read:users  delete:users");
        assert_eq!(granted.intersect(&req).to_space_separated(), "read:users");
        assert!(granted.contains_any(&["create:users", "update:users"]));
        assert!(!granted.contains("delete:users"));
    }
}
