//! The password policy of a database connection: Auth0's five strength levels, Roster's `nist` level,
//! and the password options (history size, dictionary, no personal information).
//!
//! It reads a connection's `options` JSON, judges a candidate *new* password, and answers with the Auth0
//! error body for a refusal, so every surface (signup, Management API, hosted pages) refuses alike.
//! It is pure: it never hashes, never reads the password history (it only tells its configured size;
//! the caller compares previous hashes and reports [`PolicyViolation::History`]), never logs, and never
//! puts the password, or any part of it, into a message or an error.
//!
//! Choices, where Auth0 leaves room:
//! - An absent or `null` `passwordPolicy` means `nist`, the secure default (Auth0's `password-sheriff`
//!   falls back to `none`). [`PasswordPolicy::from_connection_options`] also reads an unknown level as
//!   `nist`; [`PasswordPolicy::parse_connection_options`] refuses it (use it where options come in).
//! - Character classes follow `password-sheriff` exactly: ASCII `a-z`, `A-Z`, `0-9`, and as "special" the
//!   OWASP set, i.e. space and every ASCII punctuation mark (not only `!@#$%^&*`, which the message only
//!   gives as examples). Other characters (`é`, `ß`, emoji) count towards length only.
//! - Lengths and identical-character runs are counted in Unicode code points (`password-sheriff` counts
//!   UTF-16 units); the byte cap that protects the hasher lives in [`crate::Password`] (4 KiB, far above
//!   the 64 characters NIST asks a verifier to accept).
//! - `nist` (NIST SP 800-63B §5.1.1.2): at least 8 characters (`min_length` may raise it, never lower
//!   it), no composition rules, and always: the bundled list, custom dictionary words, derivatives of the
//!   context words (tenant, connection, "roster"), the user's own name and email parts, and passwords
//!   made only of repeated or sequential characters.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::email::Email;
use crate::error::ValidationError;
use crate::user::User;

// ---------------------------------------------------------------------------------------------------
// The bundled list of common passwords
// ---------------------------------------------------------------------------------------------------

/// 30,000 common passwords, lowercase, one per line, most common first (see `data/README.md`).
const COMMON_PASSWORDS_TXT: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS_TXT.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

/// Whether the whole password, compared case-insensitively, is on the bundled list of common passwords.
pub fn is_common_password(password: &str) -> bool {
    common_passwords().contains(password.to_lowercase().as_str())
}

// ---------------------------------------------------------------------------------------------------
// Levels
// ---------------------------------------------------------------------------------------------------

/// The strength level of `options.passwordPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyLevel {
    /// At least 1 character.
    None,
    /// At least 6 characters.
    Low,
    /// At least 8 characters, with lower case, upper case and a digit.
    Fair,
    /// At least 8 characters, with 3 of the 4 classes lower, upper, digit, special.
    Good,
    /// At least 10 characters, 3 of the 4 classes, no more than 2 identical characters in a row.
    Excellent,
    /// Roster's NIST SP 800-63B level, and the default.
    #[default]
    Nist,
}

impl PolicyLevel {
    /// The level named as in `options.passwordPolicy`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => Self::None,
            "low" => Self::Low,
            "fair" => Self::Fair,
            "good" => Self::Good,
            "excellent" => Self::Excellent,
            "nist" => Self::Nist,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Fair => "fair",
            Self::Good => "good",
            Self::Excellent => "excellent",
            Self::Nist => "nist",
        }
    }

    /// The minimum length of the level when `password_complexity_options.min_length` is not set.
    pub fn default_min_length(self) -> usize {
        match self {
            Self::None => 1,
            Self::Low => 6,
            Self::Fair | Self::Good | Self::Nist => 8,
            Self::Excellent => 10,
        }
    }
}

impl fmt::Display for PolicyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------------
// Rules, as Auth0 describes them
// ---------------------------------------------------------------------------------------------------

/// What a rule is about. The codes and message templates of Auth0's levels are those of Auth0's
/// `password-sheriff` as Auth0 sends them (`containsAtLeast` says "Contain at least ..."); the last three
/// are Roster's, used by the `nist` level and to show the dictionary and personal-information options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleCode {
    NonEmpty,
    LengthAtLeast,
    ShouldContain,
    ContainsAtLeast,
    LowerCase,
    UpperCase,
    Numbers,
    SpecialCharacters,
    IdenticalChars,
    NotCommon,
    NotPersonalInfo,
    NotRepetitiveOrSequential,
}

impl RuleCode {
    /// The `code` of the rule in Auth0's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NonEmpty => "nonEmpty",
            Self::LengthAtLeast => "lengthAtLeast",
            Self::ShouldContain => "shouldContain",
            Self::ContainsAtLeast => "containsAtLeast",
            Self::LowerCase => "lowerCase",
            Self::UpperCase => "upperCase",
            Self::Numbers => "numbers",
            Self::SpecialCharacters => "specialCharacters",
            Self::IdenticalChars => "identicalChars",
            Self::NotCommon => "notCommon",
            Self::NotPersonalInfo => "notPersonalInfo",
            Self::NotRepetitiveOrSequential => "notRepetitiveOrSequential",
        }
    }

    /// The message template, with `%d`/`%s` placeholders filled from the rule's `format`.
    pub fn message(self) -> &'static str {
        match self {
            Self::NonEmpty => "Non-empty password required",
            Self::LengthAtLeast => "At least %d characters in length",
            Self::ShouldContain => "Should contain:",
            Self::ContainsAtLeast => "Contain at least %d of the following %d types of characters:",
            Self::LowerCase => "lower case letters (a-z)",
            Self::UpperCase => "upper case letters (A-Z)",
            Self::Numbers => "numbers (i.e. 0-9)",
            Self::SpecialCharacters => "special characters (e.g. !@#$%^&*)",
            Self::IdenticalChars => "No more than %d identical characters in a row (e.g., \"%s\" not allowed)",
            Self::NotCommon => "Not a commonly used password",
            Self::NotPersonalInfo => "Not based on your name or email",
            Self::NotRepetitiveOrSequential => "No repeated or sequential characters",
        }
    }
}

/// An argument of a rule's message template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatArg {
    Number(usize),
    Text(String),
}

impl FormatArg {
    fn to_json(&self) -> Value {
        match self {
            Self::Number(n) => json!(n),
            Self::Text(s) => json!(s),
        }
    }
}

impl fmt::Display for FormatArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

/// One rule of a policy: Auth0's `{message, format, code, items, verified}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub code: RuleCode,
    pub format: Vec<FormatArg>,
    /// Sub-rules (the character classes of `shouldContain` and `containsAtLeast`).
    pub items: Vec<Rule>,
    /// Whether a checked password meets the rule; `None` when the rule only describes the policy.
    pub verified: Option<bool>,
}

impl Rule {
    fn new(code: RuleCode, format: Vec<FormatArg>) -> Self {
        Self { code, format, items: Vec::new(), verified: None }
    }

    fn with_items(mut self, items: Vec<Rule>) -> Self {
        self.items = items;
        self
    }

    fn with_verified(mut self, verified: Option<bool>) -> Self {
        self.verified = verified;
        self
    }

    /// The message template (`%d`/`%s` left in), as Auth0 sends it.
    pub fn message(&self) -> &'static str {
        self.code.message()
    }

    /// The message with its format arguments filled in (like node's `util.format`).
    pub fn rendered_message(&self) -> String {
        if self.format.is_empty() {
            return self.message().to_owned();
        }
        let mut out = String::new();
        let mut args = self.format.iter();
        let mut chars = self.message().chars().peekable();
        while let Some(c) = chars.next() {
            if c == '%'
                && matches!(chars.peek(), Some('d' | 's'))
                && let Some(arg) = args.next()
            {
                chars.next();
                out.push_str(&arg.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// A one-line English rendering, sub-rules included: fit for a form or a hosted page.
    pub fn text(&self) -> String {
        let mut out = self.rendered_message();
        if !self.items.is_empty() {
            let items: Vec<String> = self.items.iter().map(Rule::text).collect();
            out.push(' ');
            out.push_str(&items.join(", "));
        }
        out
    }

    /// The rule in Auth0's JSON shape (`format`, `items` and `verified` only when present).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("message".into(), json!(self.message()));
        if !self.format.is_empty() {
            m.insert("format".into(), Value::Array(self.format.iter().map(FormatArg::to_json).collect()));
        }
        m.insert("code".into(), json!(self.code.as_str()));
        if !self.items.is_empty() {
            m.insert("items".into(), Value::Array(self.items.iter().map(Rule::to_json).collect()));
        }
        if let Some(v) = self.verified {
            m.insert("verified".into(), json!(v));
        }
        Value::Object(m)
    }
}

/// Auth0's human list of rules (`password-sheriff`'s `toString`): `* rule` lines, sub-rules indented.
pub fn rules_as_list(rules: &[Rule]) -> String {
    fn lines(rules: &[Rule], depth: usize, out: &mut Vec<String>) {
        for rule in rules {
            out.push(format!("{}* {}", " ".repeat(depth), rule.rendered_message()));
            lines(&rule.items, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    lines(rules, 0, &mut out);
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------------
// The policy
// ---------------------------------------------------------------------------------------------------

/// The password policy of one database connection, read from its `options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    level: PolicyLevel,
    min_length: usize,
    history_size: Option<u8>,
    /// `Some` (lowercased custom words) when `password_dictionary.enable` is true.
    dictionary: Option<Vec<String>>,
    no_personal_info: bool,
}

impl Default for PasswordPolicy {
    /// The `nist` level with no option set: what a connection without a policy gets.
    fn default() -> Self {
        Self::for_level(PolicyLevel::Nist)
    }
}

impl PasswordPolicy {
    /// Bounds of `password_complexity_options.min_length`.
    pub const MIN_LENGTH_RANGE: std::ops::RangeInclusive<usize> = 1..=128;
    /// The floor of the `nist` level's minimum length.
    pub const NIST_MIN_LENGTH: usize = 8;
    /// Largest `password_history.size`.
    pub const MAX_HISTORY_SIZE: u8 = 24;
    /// History size used when `password_history` is enabled without a size (Roster's choice).
    pub const DEFAULT_HISTORY_SIZE: u8 = 5;
    /// Shortest personal or context value that is looked for inside a password (shorter ones would
    /// refuse too many innocent passwords).
    const MIN_PERSONAL_CHARS: usize = 3;
    /// Shortest part of a name or email looked for by the `nist` level.
    const MIN_NIST_PART_CHARS: usize = 4;

    /// A level with its default length and no option set.
    pub fn for_level(level: PolicyLevel) -> Self {
        Self { level, min_length: level.default_min_length(), history_size: None, dictionary: None, no_personal_info: false }
    }

    /// Read stored connection options. Never fails: a field of the wrong type is ignored, an unknown
    /// level reads as `nist`, and out-of-range numbers are clamped to their bounds.
    pub fn from_connection_options(options: &Value) -> Self {
        // Lenient reading cannot fail; were it to, the secure default is the answer.
        Self::read(options, false).unwrap_or_default()
    }

    /// Validate connection options as they come in (Management API): the same reading, but a field of
    /// the wrong type or out of range is an error naming it.
    pub fn parse_connection_options(options: &Value) -> Result<Self, ValidationError> {
        Self::read(options, true)
    }

    pub fn level(&self) -> PolicyLevel {
        self.level
    }

    /// The minimum length in code points, after `password_complexity_options.min_length`.
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// How many previous passwords the caller must refuse (`None` when history is off).
    pub fn history_size(&self) -> Option<u8> {
        self.history_size
    }

    /// Whether the bundled list of common passwords is applied (always for `nist`).
    pub fn applies_dictionary(&self) -> bool {
        self.level == PolicyLevel::Nist || self.dictionary.is_some()
    }

    /// Whether passwords based on the user's own details are refused (always for `nist`).
    pub fn applies_personal_info(&self) -> bool {
        self.level == PolicyLevel::Nist || self.no_personal_info
    }

    /// The rules to show on a form, in order: the strength rules as Auth0 describes them, then the
    /// dictionary and personal-information rules when they apply, then (for `nist`) the repetition rule.
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules = self.strength_rules(None);
        let sequence = rules.iter().position(|r| r.code == RuleCode::NotRepetitiveOrSequential).map(|i| rules.remove(i));
        if self.applies_dictionary() {
            rules.push(Rule::new(RuleCode::NotCommon, vec![]));
        }
        if self.applies_personal_info() {
            rules.push(Rule::new(RuleCode::NotPersonalInfo, vec![]));
        }
        rules.extend(sequence);
        rules
    }

    /// Auth0's `policy` text: the strength rules as a `* rule` list.
    pub fn strength_policy_text(&self) -> String {
        rules_as_list(&self.strength_rules(None))
    }

    /// Check a new password: strength first, then the dictionary, then personal information.
    /// History is the caller's to check (see [`PasswordPolicy::history_size`]).
    pub fn check(&self, password: &str, ctx: &PolicyContext) -> Result<(), PolicyViolation> {
        let report = StrengthReport { rules: self.strength_rules(Some(password)) };
        if !report.verified() {
            return Err(PolicyViolation::Strength(report));
        }
        let lower = password.to_lowercase();
        if self.is_blocklisted(&lower, ctx) {
            return Err(PolicyViolation::Dictionary);
        }
        if self.applies_personal_info() && self.uses_personal_info(&lower, ctx) {
            return Err(PolicyViolation::PersonalInfo);
        }
        Ok(())
    }

    /// The composition rules of the level; `verified` is filled in when a password is given.
    fn strength_rules(&self, password: Option<&str>) -> Vec<Rule> {
        use CharClass::*;
        let mut rules = Vec::new();
        let length_ok = password.map(|p| !p.is_empty() && p.chars().count() >= self.min_length);
        rules.push(if self.min_length <= 1 {
            Rule::new(RuleCode::NonEmpty, vec![]).with_verified(length_ok)
        } else {
            Rule::new(RuleCode::LengthAtLeast, vec![FormatArg::Number(self.min_length)]).with_verified(length_ok)
        });
        match self.level {
            PolicyLevel::None | PolicyLevel::Low => {}
            PolicyLevel::Fair => {
                let items = class_items(&[LowerCase, UpperCase, Numbers], password);
                let ok = password.map(|_| items.iter().all(|i| i.verified == Some(true)));
                rules.push(Rule::new(RuleCode::ShouldContain, vec![]).with_items(items).with_verified(ok));
            }
            PolicyLevel::Good | PolicyLevel::Excellent => {
                const AT_LEAST: usize = 3;
                let items = class_items(&[LowerCase, UpperCase, Numbers, SpecialCharacters], password);
                let ok = password.map(|_| items.iter().filter(|i| i.verified == Some(true)).count() >= AT_LEAST);
                let format = vec![FormatArg::Number(AT_LEAST), FormatArg::Number(items.len())];
                rules.push(Rule::new(RuleCode::ContainsAtLeast, format).with_items(items).with_verified(ok));
            }
            PolicyLevel::Nist => {
                let ok = password.map(|p| !is_repetitive_or_sequential(p));
                rules.push(Rule::new(RuleCode::NotRepetitiveOrSequential, vec![]).with_verified(ok));
            }
        }
        if self.level == PolicyLevel::Excellent {
            const MAX: usize = 2;
            let ok = password.map(|p| !p.is_empty() && longest_identical_run(p) <= MAX);
            let format = vec![FormatArg::Number(MAX), FormatArg::Text("a".repeat(MAX + 1))];
            rules.push(Rule::new(RuleCode::IdenticalChars, format).with_verified(ok));
        }
        rules
    }

    /// The bundled list and custom words (whole password, case-insensitive), and for `nist` the
    /// context words. `lower` is the lowercased password.
    fn is_blocklisted(&self, lower: &str, ctx: &PolicyContext) -> bool {
        if self.applies_dictionary() && common_passwords().contains(lower) {
            return true;
        }
        if self.dictionary.as_ref().is_some_and(|words| words.iter().any(|w| w == lower)) {
            return true;
        }
        self.level == PolicyLevel::Nist && self.derives_from_context_word(lower, ctx)
    }

    /// NIST's "context-specific words and derivatives thereof": the password contains a context word
    /// (as given, or with its separators removed) and what is left would not pass on its own (shorter
    /// than the minimum, common, or repetitive). So "acme" refuses "Acme2024!" but not a long passphrase
    /// that happens to name the company.
    fn derives_from_context_word(&self, lower: &str, ctx: &PolicyContext) -> bool {
        let words = ctx.context_words.iter().map(|w| w.to_lowercase()).chain(std::iter::once("roster".to_owned()));
        for word in words {
            let compact: String = word.chars().filter(|c| c.is_alphanumeric()).collect();
            for variant in [word.as_str(), compact.as_str()] {
                if variant.chars().count() < Self::MIN_PERSONAL_CHARS {
                    continue;
                }
                if let Some(at) = lower.find(variant) {
                    let rest = format!("{}{}", &lower[..at], &lower[at + variant.len()..]);
                    if rest.chars().count() < self.min_length
                        || common_passwords().contains(rest.as_str())
                        || is_repetitive_or_sequential(&rest)
                    {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Auth0's rule: the password contains one of the user's values of 3+ characters. `nist` looks for
    /// values and their parts of 4+ characters ("jane.doe" → "jane"; "doe" is too short), so a
    /// passphrase is not refused for containing a three-letter word that happens to be a name.
    fn uses_personal_info(&self, lower: &str, ctx: &PolicyContext) -> bool {
        let min = if self.level == PolicyLevel::Nist { Self::MIN_NIST_PART_CHARS } else { Self::MIN_PERSONAL_CHARS };
        ctx.personal_values().any(|value| {
            let value = value.to_lowercase();
            if value.chars().count() >= min && lower.contains(&value) {
                return true;
            }
            self.level == PolicyLevel::Nist
                && value
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|part| part.chars().count() >= Self::MIN_NIST_PART_CHARS && lower.contains(part))
        })
    }

    fn read(options: &Value, strict: bool) -> Result<Self, ValidationError> {
        let r = Reader { strict };
        let empty = Map::new();
        let options = match options {
            Value::Object(m) => m,
            Value::Null => &empty,
            _ => r.invalid(&empty, "options must be an object")?,
        };
        const LEVEL_ERR: &str = "passwordPolicy must be one of none, low, fair, good, excellent, nist or null";
        let level = match options.get("passwordPolicy") {
            None | Some(Value::Null) => PolicyLevel::Nist,
            Some(Value::String(s)) => match PolicyLevel::parse(s) {
                Some(level) => level,
                None => r.invalid(PolicyLevel::Nist, LEVEL_ERR)?,
            },
            Some(_) => r.invalid(PolicyLevel::Nist, LEVEL_ERR)?,
        };
        let mut policy = Self::for_level(level);

        if let Some(complexity) = r.object(options, "password_complexity_options")? {
            const ERR: &str = "password_complexity_options.min_length must be an integer from 1 to 128";
            match complexity.get("min_length") {
                None | Some(Value::Null) => {}
                Some(v) => match v.as_u64().map(|n| usize::try_from(n).unwrap_or(usize::MAX)) {
                    Some(n) if Self::MIN_LENGTH_RANGE.contains(&n) => policy.min_length = n,
                    Some(n) => {
                        let clamped = n.clamp(*Self::MIN_LENGTH_RANGE.start(), *Self::MIN_LENGTH_RANGE.end());
                        policy.min_length = r.invalid(clamped, ERR)?;
                    }
                    None => r.invalid((), ERR)?,
                },
            }
        }
        if level == PolicyLevel::Nist {
            policy.min_length = policy.min_length.max(Self::NIST_MIN_LENGTH);
        }

        if let Some(history) = r.object(options, "password_history")?
            && r.enabled(history, "password_history.enable")?
        {
            const ERR: &str = "password_history.size must be an integer from 0 to 24";
            let size = match history.get("size") {
                None | Some(Value::Null) => Self::DEFAULT_HISTORY_SIZE,
                Some(v) => match v.as_u64() {
                    Some(n) if n <= u64::from(Self::MAX_HISTORY_SIZE) => n as u8,
                    Some(_) => r.invalid(Self::MAX_HISTORY_SIZE, ERR)?,
                    None => r.invalid(Self::DEFAULT_HISTORY_SIZE, ERR)?,
                },
            };
            policy.history_size = (size > 0).then_some(size);
        }

        if let Some(dictionary) = r.object(options, "password_dictionary")?
            && r.enabled(dictionary, "password_dictionary.enable")?
        {
            const ERR: &str = "password_dictionary.dictionary must be an array of strings";
            let mut words = Vec::new();
            match dictionary.get("dictionary") {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        match item {
                            Value::String(w) if !w.is_empty() => words.push(w.to_lowercase()),
                            Value::String(_) => {}
                            _ => r.invalid((), ERR)?,
                        }
                    }
                }
                Some(_) => r.invalid((), ERR)?,
            }
            policy.dictionary = Some(words);
        }

        if let Some(personal) = r.object(options, "password_no_personal_info")? {
            policy.no_personal_info = r.enabled(personal, "password_no_personal_info.enable")?;
        }
        Ok(policy)
    }
}

/// Strict (refuse) or lenient (fall back) reading of connection options.
struct Reader {
    strict: bool,
}

impl Reader {
    fn invalid<T>(&self, fallback: T, msg: &str) -> Result<T, ValidationError> {
        if self.strict { Err(ValidationError::new(msg)) } else { Ok(fallback) }
    }

    fn object<'a>(&self, options: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>, ValidationError> {
        match options.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => self.invalid(None, &format!("{key} must be an object")),
        }
    }

    fn enabled(&self, object: &Map<String, Value>, what: &str) -> Result<bool, ValidationError> {
        match object.get("enable") {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => self.invalid(false, &format!("{what} must be a boolean")),
        }
    }
}

#[derive(Clone, Copy)]
enum CharClass {
    LowerCase,
    UpperCase,
    Numbers,
    SpecialCharacters,
}

impl CharClass {
    fn code(self) -> RuleCode {
        match self {
            Self::LowerCase => RuleCode::LowerCase,
            Self::UpperCase => RuleCode::UpperCase,
            Self::Numbers => RuleCode::Numbers,
            Self::SpecialCharacters => RuleCode::SpecialCharacters,
        }
    }

    fn matches(self, c: char) -> bool {
        match self {
            Self::LowerCase => c.is_ascii_lowercase(),
            Self::UpperCase => c.is_ascii_uppercase(),
            Self::Numbers => c.is_ascii_digit(),
            // OWASP's list, as in password-sheriff: space and the 32 ASCII punctuation marks.
            Self::SpecialCharacters => c == ' ' || c.is_ascii_punctuation(),
        }
    }
}

fn class_items(classes: &[CharClass], password: Option<&str>) -> Vec<Rule> {
    classes
        .iter()
        .map(|class| Rule::new(class.code(), vec![]).with_verified(password.map(|p| p.chars().any(|c| class.matches(c)))))
        .collect()
}

fn longest_identical_run(password: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    let mut prev = None;
    for c in password.chars() {
        run = if Some(c) == prev { run + 1 } else { 1 };
        prev = Some(c);
        longest = longest.max(run);
    }
    longest
}

/// Keyboard rows (US layout, unshifted) whose neighbours make "sequential" strings such as "qwertyui".
const KEYBOARD_ROWS: [&str; 4] = ["`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"];

/// How two neighbouring characters of a run relate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Same,
    Up,
    Down,
    KeyRight,
    KeyLeft,
}

impl Step {
    const ALL: [Step; 5] = [Step::Same, Step::Up, Step::Down, Step::KeyRight, Step::KeyLeft];

    fn holds(self, a: char, b: char) -> bool {
        let same_class = (a.is_ascii_digit() && b.is_ascii_digit()) || (a.is_ascii_lowercase() && b.is_ascii_lowercase());
        match self {
            Step::Same => a == b,
            Step::Up => same_class && b as u32 == a as u32 + 1,
            Step::Down => same_class && a as u32 == b as u32 + 1,
            Step::KeyRight => keyboard_neighbours(a, b),
            Step::KeyLeft => keyboard_neighbours(b, a),
        }
    }
}

fn keyboard_neighbours(left: char, right: char) -> bool {
    KEYBOARD_ROWS.iter().any(|row| row.chars().zip(row.chars().skip(1)).any(|pair| pair == (left, right)))
}

/// Length of the longest prefix of `chars` in which every neighbouring pair takes the same step.
fn longest_run_prefix(chars: &[char]) -> usize {
    if chars.len() < 2 {
        return chars.len();
    }
    Step::ALL.iter().map(|step| 1 + chars.windows(2).take_while(|w| step.holds(w[0], w[1])).count()).max().unwrap_or(1)
}

/// NIST's "repetitive or sequential characters": the password (case-insensitively) repeats a unit of
/// at most 4 characters ("aaaaaaaa", "abababab", "123123123"), or is at most two runs of repeated,
/// alphabetical/numerical or keyboard-neighbour characters ("12345678", "abcdefgh", "qwertyui",
/// "1234abcd", "aaaa1111", "qwerty123").
fn is_repetitive_or_sequential(password: &str) -> bool {
    let chars: Vec<char> = password.to_lowercase().chars().collect();
    let n = chars.len();
    if n < 3 {
        return false;
    }
    if (1..=4).any(|unit| n > unit && (unit..n).all(|i| chars[i] == chars[i - unit])) {
        return true;
    }
    let reversed: Vec<char> = chars.iter().rev().copied().collect();
    longest_run_prefix(&chars) + longest_run_prefix(&reversed) >= n
}

// ---------------------------------------------------------------------------------------------------
// The context of a check
// ---------------------------------------------------------------------------------------------------

/// What a password must not be based on: the user's own details and the words of its context.
#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    pub email: Option<Email>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// `user_metadata.name`, `.first` and `.last`, when they are strings.
    pub metadata_names: Vec<String>,
    /// Tenant name, connection name ... (used by `nist`; "roster" is always added).
    pub context_words: Vec<String>,
}

impl PolicyContext {
    /// The personal details of a user (stored, or about to be created).
    pub fn for_user(user: &User) -> Self {
        let metadata = user.user_metadata.as_map();
        Self {
            email: user.email.clone(),
            username: user.username.clone(),
            name: user.name.clone(),
            nickname: user.nickname.clone(),
            given_name: user.given_name.clone(),
            family_name: user.family_name.clone(),
            metadata_names: ["name", "first", "last"]
                .iter()
                .filter_map(|k| metadata.get(*k).and_then(Value::as_str).map(str::to_owned))
                .collect(),
            context_words: Vec::new(),
        }
    }

    /// Add context words (tenant name, connection name).
    pub fn with_context_words<I, S>(mut self, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.context_words.extend(words.into_iter().map(Into::into));
        self
    }

    fn personal_values(&self) -> impl Iterator<Item = &str> {
        let fields = [&self.username, &self.name, &self.nickname, &self.given_name, &self.family_name];
        self.email
            .as_ref()
            .map(Email::local_part)
            .into_iter()
            .chain(fields.into_iter().filter_map(|f| f.as_deref()))
            .chain(self.metadata_names.iter().map(String::as_str))
    }
}

// ---------------------------------------------------------------------------------------------------
// Violations
// ---------------------------------------------------------------------------------------------------

/// The composition rules of the policy, each with `verified` for the checked password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrengthReport {
    rules: Vec<Rule>,
}

impl StrengthReport {
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether every rule is met.
    pub fn verified(&self) -> bool {
        self.rules.iter().all(|r| r.verified == Some(true))
    }

    /// Auth0's `policy` text: every rule as a `* rule` list.
    pub fn policy_text(&self) -> String {
        rules_as_list(&self.rules)
    }
}

/// Why a new password is refused. `check` returns the first three; `History` is the caller's, who
/// compares the previous hashes, and is here so every refusal has the same Auth0 shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    /// `PasswordStrengthError`: a composition rule is not met.
    Strength(StrengthReport),
    /// `PasswordDictionaryError`: a common password, a custom dictionary word, or (nist) a context word.
    Dictionary,
    /// `PasswordNoUserInfoError`: based on the user's name, username, nickname or email.
    PersonalInfo,
    /// `PasswordHistoryError`: one of the last `history_size` passwords.
    History,
}

impl PolicyViolation {
    /// The refusal the caller reports when the password matches one of the previous hashes.
    pub fn history() -> Self {
        Self::History
    }

    /// Auth0's error `name`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Strength(_) => "PasswordStrengthError",
            Self::Dictionary => "PasswordDictionaryError",
            Self::PersonalInfo => "PasswordNoUserInfoError",
            Self::History => "PasswordHistoryError",
        }
    }

    /// Auth0's error `message`.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Strength(_) => "Password is too weak",
            Self::Dictionary => "Password is too common",
            Self::PersonalInfo => "Password contains user information",
            Self::History => "Password has previously been used",
        }
    }

    /// Every password refusal is a 400.
    pub fn status_code(&self) -> u16 {
        400
    }

    /// The `message` of a Management API 400 (`{"statusCode":400,"error":"Bad Request","message":...}`),
    /// which Auth0 writes as `Name: message`.
    pub fn management_message(&self) -> String {
        format!("{}: {}", self.name(), self.message())
    }

    /// The Authentication API body (`/dbconnections/signup`, change password), status 400.
    pub fn to_auth0_json(&self) -> Value {
        let description = match self {
            Self::Strength(report) => json!({
                "rules": report.rules.iter().map(Rule::to_json).collect::<Vec<_>>(),
                "verified": false,
            }),
            _ => json!(self.message()),
        };
        let mut body = json!({
            "name": self.name(),
            "message": self.message(),
            "code": "invalid_password",
            "description": description,
            "statusCode": self.status_code(),
        });
        if let Self::Strength(report) = self {
            body["policy"] = json!(report.policy_text());
        }
        body
    }
}

impl fmt::Display for PolicyViolation {
    /// One plain-English line for a hosted page.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Strength(report) => {
                let missing: Vec<String> = report.rules.iter().filter(|r| r.verified != Some(true)).map(Rule::text).collect();
                write!(f, "Password is too weak. It needs: {}.", missing.join("; "))
            }
            Self::Dictionary => f.write_str("This password is too common or too easy to guess. Please choose another."),
            Self::PersonalInfo => f.write_str("This password is based on your name, username or email. Please choose another."),
            Self::History => f.write_str("This password has been used recently. Please choose a new one."),
        }
    }
}

impl std::error::Error for PolicyViolation {}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(options: Value) -> PasswordPolicy {
        PasswordPolicy::from_connection_options(&options)
    }

    fn level(name: &str) -> PasswordPolicy {
        policy(json!({ "passwordPolicy": name }))
    }

    fn ok(p: &PasswordPolicy, pw: &str) -> bool {
        p.check(pw, &PolicyContext::default()).is_ok()
    }

    fn codes(rules: &[Rule]) -> Vec<&'static str> {
        rules.iter().map(|r| r.code.as_str()).collect()
    }

    fn assert_accepts(p: &PasswordPolicy, passwords: &[&str]) {
        for pw in passwords {
            assert!(ok(p, pw), "{} should accept {pw:?}: {:?}", p.level(), p.check(pw, &PolicyContext::default()));
        }
    }

    fn assert_refuses(p: &PasswordPolicy, passwords: &[&str]) {
        for pw in passwords {
            assert!(!ok(p, pw), "{} should refuse {pw:?}", p.level());
        }
    }

    #[test]
    fn none_needs_one_character() {
        let p = level("none");
        assert_eq!((p.level(), p.min_length()), (PolicyLevel::None, 1));
        assert_accepts(&p, &["a", "1", "password"]);
        assert_refuses(&p, &[""]);
    }

    #[test]
    fn low_needs_six_characters() {
        let p = level("low");
        assert_accepts(&p, &["abcdef", "123456", "éééééé"]);
        assert_refuses(&p, &["abcde", ""]);
    }

    #[test]
    fn fair_needs_eight_with_lower_upper_and_digit() {
        let p = level("fair");
        assert_accepts(&p, &["Abcdefg1", "Password1", "aB3 !!!!!"]);
        assert_refuses(&p, &["Abcdef1", "abcdefg1", "ABCDEFG1", "Abcdefgh", "Abcdefg!"]);
    }

    #[test]
    fn good_needs_eight_with_three_of_four_classes() {
        let p = level("good");
        assert_accepts(&p, &["Abcdefg1", "abcdef1!", "ABCDEF1!", "Abcdefg!", "abc def1", "abcdefg1~"]);
        assert_refuses(&p, &["Abcdef1", "abcdefg1", "ABCDEFGH", "abc!def!", "ÄÖÜäöüß1"]);
    }

    #[test]
    fn excellent_needs_ten_three_classes_and_no_triples() {
        let p = level("excellent");
        assert_accepts(&p, &["Abcdefgh1!", "Aabbccdd11", "Correct horse 1"]);
        assert_refuses(&p, &["Abcdefg1!", "Abbbcdefg1!", "Abcdefgh111", "abcdefghij"]);
    }

    #[test]
    fn identical_chars_counts_code_points_and_is_case_sensitive() {
        let p = level("excellent");
        assert_accepts(&p, &["aAaBbB12!x", "😀😀Abcdef1!"]);
        assert_refuses(&p, &["😀😀😀Abcdef1!", "xx!!!Abcdef1"]);
        assert_eq!(longest_identical_run("abbbcc"), 3);
        assert_eq!(longest_identical_run(""), 0);
    }

    #[test]
    fn min_length_override() {
        let p = policy(json!({"passwordPolicy": "low", "password_complexity_options": {"min_length": 12}}));
        assert_eq!(p.min_length(), 12);
        assert_refuses(&p, &["abcdefghijk"]);
        assert_accepts(&p, &["abcdefghijkl"]);

        let p = policy(json!({"passwordPolicy": "good", "password_complexity_options": {"min_length": 4}}));
        assert_eq!(p.min_length(), 4);
        assert_accepts(&p, &["Ab1!"]);

        let p = policy(json!({"passwordPolicy": "none", "password_complexity_options": {"min_length": 1}}));
        assert_eq!(codes(&p.rules()), ["nonEmpty"]);

        // nist never goes below 8, but may go above.
        let p = policy(json!({"passwordPolicy": "nist", "password_complexity_options": {"min_length": 4}}));
        assert_eq!(p.min_length(), 8);
        let p = policy(json!({"password_complexity_options": {"min_length": 15}}));
        assert_eq!(p.min_length(), 15);
        assert_refuses(&p, &["vq7#mK2pZ!x4r9"]);
        assert_accepts(&p, &["vq7#mK2pZ!x4r9T"]);

        // Stored options out of range are clamped; incoming ones are refused.
        assert_eq!(
            policy(json!({"passwordPolicy": "low", "password_complexity_options": {"min_length": 500}})).min_length(),
            128
        );
        assert_eq!(policy(json!({"passwordPolicy": "low", "password_complexity_options": {"min_length": 0}})).min_length(), 1);
        assert_eq!(policy(json!({"passwordPolicy": "low", "password_complexity_options": {"min_length": "9"}})).min_length(), 6);
        for bad in [json!(0), json!(129), json!("9"), json!(8.5)] {
            let options = json!({"passwordPolicy": "low", "password_complexity_options": {"min_length": bad}});
            assert_eq!(
                PasswordPolicy::parse_connection_options(&options).unwrap_err().message(),
                "password_complexity_options.min_length must be an integer from 1 to 128"
            );
        }
    }

    #[test]
    fn lengths_are_code_points() {
        let p = level("low");
        assert_accepts(&p, &["ééééé😀"]);
        assert_refuses(&p, &["éééé😀"]);
    }

    #[test]
    fn absent_or_null_policy_is_nist() {
        for options in [json!({}), json!(null), json!({"passwordPolicy": null}), json!({"passwordPolicy": "strong"})] {
            let p = policy(options);
            assert_eq!((p.level(), p.min_length()), (PolicyLevel::Nist, 8));
            assert!(p.applies_dictionary() && p.applies_personal_info());
        }
        assert_eq!(PasswordPolicy::default(), policy(json!({})));
        assert_eq!(
            PasswordPolicy::parse_connection_options(&json!({"passwordPolicy": "strong"})).unwrap_err().message(),
            "passwordPolicy must be one of none, low, fair, good, excellent, nist or null"
        );
        assert_eq!(PasswordPolicy::parse_connection_options(&json!({})).unwrap(), PasswordPolicy::default());
    }

    #[test]
    fn history_size_is_exposed() {
        assert_eq!(level("good").history_size(), None);
        assert_eq!(policy(json!({"password_history": {"enable": false, "size": 10}})).history_size(), None);
        assert_eq!(policy(json!({"password_history": {"enable": true, "size": 10}})).history_size(), Some(10));
        assert_eq!(policy(json!({"password_history": {"enable": true}})).history_size(), Some(5));
        assert_eq!(policy(json!({"password_history": {"enable": true, "size": 0}})).history_size(), None);
        assert_eq!(policy(json!({"password_history": {"enable": true, "size": 99}})).history_size(), Some(24));
        assert!(PasswordPolicy::parse_connection_options(&json!({"password_history": {"enable": true, "size": 25}})).is_err());
        assert!(PasswordPolicy::parse_connection_options(&json!({"password_history": {"enable": "yes"}})).is_err());
        assert!(PasswordPolicy::parse_connection_options(&json!({"password_history": []})).is_err());
    }

    #[test]
    fn dictionary_bundled_and_custom_case_insensitive() {
        // Off unless enabled for Auth0's levels.
        assert_accepts(&level("low"), &["password", "hunter42"]);

        let p = policy(json!({
            "passwordPolicy": "low",
            "password_dictionary": {"enable": true, "dictionary": ["Hunter42", "acme-corp"]}
        }));
        assert!(p.applies_dictionary());
        for pw in ["password", "PassWord", "QWERTY123", "hunter42", "HUNTER42", "Acme-Corp"] {
            assert_eq!(p.check(pw, &PolicyContext::default()), Err(PolicyViolation::Dictionary), "{pw}");
        }
        // Whole-password match only.
        assert_accepts(&p, &["hunter42x", "my password is long", "acme-corp-rocks"]);

        // Enabled without custom words: the bundled list alone.
        let p = policy(json!({"passwordPolicy": "low", "password_dictionary": {"enable": true}}));
        assert_refuses(&p, &["iloveyou"]);
        assert!(
            PasswordPolicy::parse_connection_options(&json!({"password_dictionary": {"enable": true, "dictionary": [1]}}))
                .is_err()
        );
    }

    #[test]
    fn personal_info_email_names_metadata_and_short_values_ignored() {
        let p = policy(json!({"passwordPolicy": "low", "password_no_personal_info": {"enable": true}}));
        let ctx = PolicyContext {
            email: Some(Email::parse("jdoe@example.com").unwrap()),
            username: Some("ab".into()),
            name: Some("Jane Doe".into()),
            nickname: Some("jd".into()),
            metadata_names: vec!["Marguerite".into(), "Li".into()],
            ..PolicyContext::default()
        };
        for pw in ["xJDoe123", "Jane Doe!", "MARGUERITE99"] {
            assert_eq!(p.check(pw, &ctx), Err(PolicyViolation::PersonalInfo), "{pw}");
        }
        // "ab", "jd" and "Li" are shorter than 3 characters; Auth0's levels look for whole values only.
        assert_eq!(p.check("li-ab-jd-123", &ctx), Ok(()));
        assert_eq!(p.check("janedoe1", &ctx), Ok(()));
        // Off unless enabled.
        assert_eq!(level("low").check("xJDoe123", &ctx), Ok(()));
    }

    #[test]
    fn personal_info_from_user() {
        let user = User {
            user_id: crate::UserId::new_database(),
            connection_id: crate::ConnectionId::new_random(),
            email: Some(Email::parse("marguerite.dupont@example.com").unwrap()),
            email_verified: false,
            username: None,
            phone_number: None,
            phone_verified: false,
            name: None,
            given_name: Some("Amélie".into()),
            family_name: None,
            nickname: None,
            picture: None,
            user_metadata: crate::Metadata::from_trusted(json!({"first": "Zoltan", "last": 7}).as_object().unwrap().clone()),
            app_metadata: crate::Metadata::empty(),
            blocked: false,
            identities: vec![],
            created_at: crate::Timestamp::from_millis(1),
            updated_at: crate::Timestamp::from_millis(1),
            last_login: None,
            last_ip: None,
            logins_count: 0,
            last_password_reset: None,
        };
        let ctx = PolicyContext::for_user(&user);
        assert_eq!(ctx.metadata_names, ["Zoltan"]);
        let p = PasswordPolicy::default();
        for pw in ["zoltan-was-here-1", "AMÉLIE-2024-xyz", "dupont-rocks-hard"] {
            assert_eq!(p.check(pw, &ctx), Err(PolicyViolation::PersonalInfo), "{pw}");
        }
    }

    #[test]
    fn nist_level() {
        let p = level("nist");
        let ctx = PolicyContext::default().with_context_words(["Acme-Widgets", "Username-Password-Authentication"]);
        let check = |pw: &str| p.check(pw, &ctx);

        // 8 characters, no composition rules.
        assert_eq!(check("vq7#mk2p"), Ok(()));
        assert_eq!(check("purplemonkeydishwasher"), Ok(()));
        assert!(matches!(check("vq7#mk2"), Err(PolicyViolation::Strength(_))));

        // Common passwords.
        for pw in ["password1", "Password1", "iloveyou", "trustno1"] {
            assert_eq!(check(pw), Err(PolicyViolation::Dictionary), "{pw}");
        }
        // Repetitive or sequential.
        for pw in ["aaaaaaaa", "12345678", "abcdefgh", "qwertyui", "87654321", "1234abcd", "abababab", "zyxwvuts", "asdfghjk"] {
            assert!(matches!(check(pw), Err(PolicyViolation::Strength(_))), "{pw}: {:?}", check(pw));
        }
        // Sequences inside a longer password are fine.
        assert_eq!(check("abc-fox-123-jumps"), Ok(()));

        // NIST asks verifiers to accept at least 64 characters.
        let passphrase = "correct horse battery staple, then sixty-four characters in all!";
        assert_eq!(passphrase.chars().count(), 64);
        assert_eq!(check(passphrase), Ok(()));

        // Context words and their derivatives; a passphrase that merely names the tenant is fine.
        for pw in ["acme-widgets", "ACMEWIDGETS", "AcmeWidgets2024", "roster2024!", "rosterpassword", "roster12345678"] {
            assert_eq!(check(pw), Err(PolicyViolation::Dictionary), "{pw}");
        }
        assert_eq!(check("acme-widgets sells the best blue gizmos"), Ok(()));

        // Custom dictionary words apply to nist too.
        let custom = policy(json!({"password_dictionary": {"enable": true, "dictionary": ["Blue-Gizmo-42"]}}));
        assert_eq!(custom.check("blue-gizmo-42", &ctx), Err(PolicyViolation::Dictionary));

        // Personal information is always on, including parts of names and the email local part.
        let ctx = PolicyContext {
            email: Some(Email::parse("j.random.hacker@example.com").unwrap()),
            name: Some("Jo Random".into()),
            ..PolicyContext::default()
        };
        assert_eq!(p.check("random-walk-77", &ctx), Err(PolicyViolation::PersonalInfo));
        assert_eq!(p.check("hackers-delight", &ctx), Err(PolicyViolation::PersonalInfo));
        // "jo" and "j" are too short to count.
        assert_eq!(p.check("joyful-jumping-7", &ctx), Ok(()));
    }

    #[test]
    fn repetition_and_sequence_detector() {
        for pw in
            ["aaaaaaaa", "AAAAaaaa", "12121212", "123123123", "abcdefgh", "qwertyui", "qwerty123", "aaaa1111", "7890-=", "0987"]
        {
            assert!(is_repetitive_or_sequential(pw), "{pw}");
        }
        for pw in ["password", "abcdxyz1", "1qaz2wsx", "vq7#mk2p", "ab", ""] {
            assert!(!is_repetitive_or_sequential(pw), "{pw}");
        }
    }

    #[test]
    fn strength_error_json_good() {
        let p = level("good");
        let err = p.check("hello", &PolicyContext::default()).unwrap_err();
        assert_eq!(
            err.to_auth0_json(),
            json!({
                "name": "PasswordStrengthError",
                "message": "Password is too weak",
                "code": "invalid_password",
                "description": {
                    "rules": [
                        {"message": "At least %d characters in length", "format": [8], "code": "lengthAtLeast", "verified": false},
                        {
                            "message": "Contain at least %d of the following %d types of characters:",
                            "code": "containsAtLeast",
                            "format": [3, 4],
                            "items": [
                                {"message": "lower case letters (a-z)", "code": "lowerCase", "verified": true},
                                {"message": "upper case letters (A-Z)", "code": "upperCase", "verified": false},
                                {"message": "numbers (i.e. 0-9)", "code": "numbers", "verified": false},
                                {"message": "special characters (e.g. !@#$%^&*)", "code": "specialCharacters", "verified": false}
                            ],
                            "verified": false
                        }
                    ],
                    "verified": false
                },
                "policy": "* At least 8 characters in length\n* Contain at least 3 of the following 4 types of characters:\n * lower case letters (a-z)\n * upper case letters (A-Z)\n * numbers (i.e. 0-9)\n * special characters (e.g. !@#$%^&*)",
                "statusCode": 400
            })
        );
        assert_eq!(err.management_message(), "PasswordStrengthError: Password is too weak");
        assert_eq!(
            err.to_string(),
            "Password is too weak. It needs: At least 8 characters in length; Contain at least 3 of the following 4 \
             types of characters: lower case letters (a-z), upper case letters (A-Z), numbers (i.e. 0-9), special \
             characters (e.g. !@#$%^&*)."
        );
    }

    #[test]
    fn strength_error_json_fair_excellent_none_nist() {
        let err = level("fair").check("abcdefgh", &PolicyContext::default()).unwrap_err();
        assert_eq!(
            err.to_auth0_json(),
            json!({
                "name": "PasswordStrengthError",
                "message": "Password is too weak",
                "code": "invalid_password",
                "description": {
                    "rules": [
                        {"message": "At least %d characters in length", "format": [8], "code": "lengthAtLeast", "verified": true},
                        {
                            "message": "Should contain:",
                            "code": "shouldContain",
                            "items": [
                                {"message": "lower case letters (a-z)", "code": "lowerCase", "verified": true},
                                {"message": "upper case letters (A-Z)", "code": "upperCase", "verified": false},
                                {"message": "numbers (i.e. 0-9)", "code": "numbers", "verified": false}
                            ],
                            "verified": false
                        }
                    ],
                    "verified": false
                },
                "policy": "* At least 8 characters in length\n* Should contain:\n * lower case letters (a-z)\n * upper case letters (A-Z)\n * numbers (i.e. 0-9)",
                "statusCode": 400
            })
        );

        let err = level("excellent").check("Abbbcdefg1!", &PolicyContext::default()).unwrap_err();
        let body = err.to_auth0_json();
        assert_eq!(
            body["description"]["rules"][2],
            json!({
                "message": "No more than %d identical characters in a row (e.g., \"%s\" not allowed)",
                "code": "identicalChars",
                "format": [2, "aaa"],
                "verified": false
            })
        );
        assert_eq!(body["description"]["rules"][0]["format"], json!([10]));
        assert_eq!(body["description"]["rules"][1]["verified"], json!(true));
        assert_eq!(
            body["policy"],
            json!(
                "* At least 10 characters in length\n* Contain at least 3 of the following 4 types of characters:\n \
                 * lower case letters (a-z)\n * upper case letters (A-Z)\n * numbers (i.e. 0-9)\n * special characters \
                 (e.g. !@#$%^&*)\n* No more than 2 identical characters in a row (e.g., \"aaa\" not allowed)"
            )
        );

        let err = level("none").check("", &PolicyContext::default()).unwrap_err();
        assert_eq!(
            err.to_auth0_json(),
            json!({
                "name": "PasswordStrengthError",
                "message": "Password is too weak",
                "code": "invalid_password",
                "description": {
                    "rules": [{"message": "Non-empty password required", "code": "nonEmpty", "verified": false}],
                    "verified": false
                },
                "policy": "* Non-empty password required",
                "statusCode": 400
            })
        );

        let err = level("nist").check("aaaaaaaa", &PolicyContext::default()).unwrap_err();
        assert_eq!(
            err.to_auth0_json(),
            json!({
                "name": "PasswordStrengthError",
                "message": "Password is too weak",
                "code": "invalid_password",
                "description": {
                    "rules": [
                        {"message": "At least %d characters in length", "format": [8], "code": "lengthAtLeast", "verified": true},
                        {"message": "No repeated or sequential characters", "code": "notRepetitiveOrSequential", "verified": false}
                    ],
                    "verified": false
                },
                "policy": "* At least 8 characters in length\n* No repeated or sequential characters",
                "statusCode": 400
            })
        );
        assert_eq!(err.to_string(), "Password is too weak. It needs: No repeated or sequential characters.");
    }

    #[test]
    fn other_violations_json_and_display() {
        assert_eq!(
            PolicyViolation::Dictionary.to_auth0_json(),
            json!({
                "name": "PasswordDictionaryError",
                "message": "Password is too common",
                "code": "invalid_password",
                "description": "Password is too common",
                "statusCode": 400
            })
        );
        assert_eq!(
            PolicyViolation::PersonalInfo.to_auth0_json(),
            json!({
                "name": "PasswordNoUserInfoError",
                "message": "Password contains user information",
                "code": "invalid_password",
                "description": "Password contains user information",
                "statusCode": 400
            })
        );
        assert_eq!(
            PolicyViolation::history().to_auth0_json(),
            json!({
                "name": "PasswordHistoryError",
                "message": "Password has previously been used",
                "code": "invalid_password",
                "description": "Password has previously been used",
                "statusCode": 400
            })
        );
        assert_eq!(PolicyViolation::Dictionary.management_message(), "PasswordDictionaryError: Password is too common");
        assert_eq!(
            PolicyViolation::PersonalInfo.management_message(),
            "PasswordNoUserInfoError: Password contains user information"
        );
        assert_eq!(PolicyViolation::History.management_message(), "PasswordHistoryError: Password has previously been used");
        assert_eq!(
            PolicyViolation::Dictionary.to_string(),
            "This password is too common or too easy to guess. Please choose another."
        );
        assert_eq!(
            PolicyViolation::PersonalInfo.to_string(),
            "This password is based on your name, username or email. Please choose another."
        );
        assert_eq!(PolicyViolation::History.to_string(), "This password has been used recently. Please choose a new one.");
    }

    #[test]
    fn violations_never_echo_the_password() {
        let secret = "Zq";
        let err = level("good").check(secret, &PolicyContext::default()).unwrap_err();
        assert!(!err.to_auth0_json().to_string().contains(secret));
        assert!(!err.to_string().contains(secret));
        assert!(!format!("{err:?}").contains(secret));
    }

    #[test]
    fn rules_for_each_level() {
        let texts = |p: &PasswordPolicy| p.rules().iter().map(Rule::text).collect::<Vec<_>>();
        assert_eq!(texts(&level("none")), ["Non-empty password required"]);
        assert_eq!(texts(&level("low")), ["At least 6 characters in length"]);
        assert_eq!(
            texts(&level("fair")),
            [
                "At least 8 characters in length",
                "Should contain: lower case letters (a-z), upper case letters (A-Z), numbers (i.e. 0-9)"
            ]
        );
        let three_of_four = "Contain at least 3 of the following 4 types of characters: lower case letters (a-z), \
                             upper case letters (A-Z), numbers (i.e. 0-9), special characters (e.g. !@#$%^&*)";
        assert_eq!(texts(&level("good")), ["At least 8 characters in length", three_of_four]);
        assert_eq!(
            texts(&level("excellent")),
            [
                "At least 10 characters in length",
                three_of_four,
                "No more than 2 identical characters in a row (e.g., \"aaa\" not allowed)"
            ]
        );
        assert_eq!(
            texts(&level("nist")),
            [
                "At least 8 characters in length",
                "Not a commonly used password",
                "Not based on your name or email",
                "No repeated or sequential characters"
            ]
        );
        let with_options = policy(json!({
            "passwordPolicy": "fair",
            "password_dictionary": {"enable": true},
            "password_no_personal_info": {"enable": true}
        }));
        assert_eq!(codes(&with_options.rules()), ["lengthAtLeast", "shouldContain", "notCommon", "notPersonalInfo"]);

        // Descriptions carry no verdict, and read as Auth0's JSON.
        let rules = level("excellent").rules();
        assert!(rules.iter().all(|r| r.verified.is_none() && r.items.iter().all(|i| i.verified.is_none())));
        assert_eq!(
            rules[2].to_json(),
            json!({
                "message": "No more than %d identical characters in a row (e.g., \"%s\" not allowed)",
                "code": "identicalChars",
                "format": [2, "aaa"]
            })
        );
        let Err(PolicyViolation::Strength(report)) = level("good").check("x", &PolicyContext::default()) else { panic!("weak") };
        assert_eq!(level("good").strength_policy_text(), report.policy_text());
    }

    #[test]
    fn bundled_list() {
        let list = common_passwords();
        assert!(list.len() >= 10_000, "{}", list.len());
        for pw in ["password", "123456789", "qwerty123", "iloveyou", "letmein"] {
            assert!(list.contains(pw), "{pw}");
        }
        assert!(is_common_password("PASSWORD"));
        assert!(!is_common_password("vq7#mk2p"));
        assert!(list.iter().all(|w| w.chars().count() >= 4 && *w == w.to_lowercase()));
    }
}
