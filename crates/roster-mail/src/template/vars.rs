//! The variables a template sees, built from the caller's JSON.
//!
//! Three jobs: compute `lang`; give liquid a lenient view of the variables, in which a missing key (or a
//! `null`) reads as nil at any depth, as in Auth0 and Shopify Liquid, instead of liquid-rust's "Unknown
//! index" error (an admin's `{{ user.user_metadata.first_name }}` must not stop the mail of a user who
//! has no such key); and make the HTML-escaped copy used for HTML bodies. Values stay data here: this
//! module must never turn a value into template source.

use std::collections::BTreeMap;
use std::fmt;

use liquid::model::{ArrayView, DisplayCow, KString, KStringCow, ObjectView, ScalarCow, State, Value, ValueView};
use serde_json::{Map, Value as Json};

/// How string values (and object keys) are written into the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escape {
    /// As given: for the subject, the `from` and the text part.
    None,
    /// HTML-escaped: for the HTML body.
    Html,
}

impl Escape {
    fn apply(self, s: &str) -> KString {
        match self {
            Escape::None => KString::from_ref(s),
            Escape::Html => KString::from_string(escape_html(s)),
        }
    }
}

/// The caller's variables as an object, with `lang` added unless the caller gave one.
///
/// `lang` is the first two letters, lowercased, of `user.user_metadata.lang`, else
/// `user.user_metadata.locale`, else `request_language` (an `Accept-Language` value works), else `en`.
pub(super) fn with_lang(vars: &Json) -> Map<String, Json> {
    let mut vars = vars.as_object().cloned().unwrap_or_default();
    if vars.get("lang").is_none_or(Json::is_null) {
        let lang = language(&vars);
        vars.insert("lang".to_owned(), Json::String(lang));
    }
    vars
}

fn language(vars: &Map<String, Json>) -> String {
    let metadata = vars.get("user").and_then(|user| user.get("user_metadata"));
    [metadata.and_then(|m| m.get("lang")), metadata.and_then(|m| m.get("locale")), vars.get("request_language")]
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .find_map(two_letters)
        .unwrap_or_else(|| "en".to_owned())
}

/// `"fr-FR"`, `"fr_FR"`, `"FR"`, `"fr-FR,fr;q=0.9"` → `"fr"`; `None` unless two ASCII letters lead.
fn two_letters(tag: &str) -> Option<String> {
    let mut letters = tag.trim().chars();
    let pair = [letters.next()?, letters.next()?];
    pair.iter().all(char::is_ascii_alphabetic).then(|| pair.iter().map(char::to_ascii_lowercase).collect())
}

/// Escapes `& < > " '` so a value is text in HTML content and in quoted attributes.
pub(super) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes a rendered subject or `from` safe for a mail header: every control character (CR, LF, tab…)
/// becomes a space, runs of whitespace collapse to one space, and the ends are trimmed.
pub(super) fn header_line(s: &str) -> String {
    let spaced: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A variable as liquid sees it; the root is a [`Globals`].
#[derive(Debug)]
pub(super) enum Lenient {
    /// An absent key or a JSON `null`: renders empty, is `nil`, `blank` and `empty`, and indexing it
    /// gives `Missing` again.
    Missing,
    Scalar(Value),
    Array(Vec<Lenient>),
    Object(BTreeMap<KString, Lenient>),
}

static MISSING: Lenient = Lenient::Missing;
static NIL: Value = Value::Nil;

impl Lenient {
    pub(super) fn from_json(value: &Json, escape: Escape) -> Self {
        match value {
            Json::Null => Lenient::Missing,
            Json::Bool(b) => Lenient::Scalar(Value::scalar(*b)),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Lenient::Scalar(Value::scalar(i)),
                None => n.as_f64().map_or(Lenient::Missing, |f| Lenient::Scalar(Value::scalar(f))),
            },
            Json::String(s) => Lenient::Scalar(Value::scalar(escape.apply(s))),
            Json::Array(items) => Lenient::Array(items.iter().map(|v| Self::from_json(v, escape)).collect()),
            Json::Object(map) => Lenient::Object(Self::object(map, escape)),
        }
    }

    fn object(map: &Map<String, Json>, escape: Escape) -> BTreeMap<KString, Lenient> {
        map.iter().map(|(k, v)| (escape.apply(k), Self::from_json(v, escape))).collect()
    }

    /// The liquid value this one behaves as, once found.
    fn view(&self) -> &dyn ValueView {
        match self {
            Lenient::Missing => &NIL,
            Lenient::Scalar(value) => value,
            Lenient::Array(items) => items,
            Lenient::Object(map) => map,
        }
    }
}

// Liquid only walks a path through this type (`as_object`/`as_array`, then `get`), then copies what it
// found with `to_value`: so a `Missing` only needs to answer `get` to keep a path going, and becomes a
// plain `nil` once found.
impl ValueView for Lenient {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.view().render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.view().source()
    }
    fn type_name(&self) -> &'static str {
        self.view().type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.view().query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.view().to_kstr()
    }
    fn to_value(&self) -> Value {
        self.view().to_value()
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        self.view().as_scalar()
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Lenient::Array(items) => Some(items),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Lenient::Object(_) | Lenient::Missing => Some(self),
            _ => None,
        }
    }
    fn is_nil(&self) -> bool {
        self.view().is_nil()
    }
}

impl ObjectView for Lenient {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        match self {
            Lenient::Object(map) => ObjectView::size(map),
            _ => 0,
        }
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        match self {
            Lenient::Object(map) => ObjectView::keys(map),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        match self {
            Lenient::Object(map) => ObjectView::values(map),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        match self {
            Lenient::Object(map) => ObjectView::iter(map),
            _ => Box::new(std::iter::empty()),
        }
    }
    fn contains_key(&self, index: &str) -> bool {
        self.get(index).is_some()
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        match self {
            Lenient::Object(map) => match map.get(index) {
                Some(found) => Some(found),
                // Liquid answers `size` itself when the object has no such key.
                None if index == "size" => None,
                None => Some(&MISSING),
            },
            _ => Some(&MISSING),
        }
    }
}

/// The root of the variables: like an object, except that every name, `size` included, is a
/// variable (missing ones are nil).
#[derive(Debug)]
pub(super) struct Globals(Lenient);

impl Globals {
    pub(super) fn new(vars: &Map<String, Json>, escape: Escape) -> Self {
        Globals(Lenient::Object(Lenient::object(vars, escape)))
    }
}

impl ValueView for Globals {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.0.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.0.source()
    }
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.0.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.0.to_kstr()
    }
    fn to_value(&self) -> Value {
        self.0.to_value()
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Globals {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        ObjectView::size(&self.0)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        self.0.keys()
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        self.0.values()
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        ObjectView::iter(&self.0)
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        self.0.get(index).or(Some(&MISSING))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(source: &str, vars: &Json, escape: Escape) -> String {
        let parser = liquid::ParserBuilder::with_stdlib().build().expect("stdlib parser");
        let template = parser.parse(source).expect("test template parses");
        let globals = Globals::new(&with_lang(vars), escape);
        template.render(&globals).expect("renders")
    }

    #[test]
    fn lang_comes_from_metadata_then_locale_then_request_language() {
        let lang = |vars: Json| with_lang(&vars)["lang"].clone();
        assert_eq!(lang(json!({"user": {"user_metadata": {"lang": "FR-ca", "locale": "de"}}})), "fr");
        assert_eq!(lang(json!({"user": {"user_metadata": {"locale": "de_DE"}}, "request_language": "fr"})), "de");
        assert_eq!(lang(json!({"request_language": "fr-FR,fr;q=0.9,en;q=0.8"})), "fr");
        assert_eq!(lang(json!({"user": {"user_metadata": {"lang": "?"}}, "request_language": "es"})), "es");
        assert_eq!(lang(json!({"user": {"user_metadata": {"lang": 3}}})), "en");
        assert_eq!(lang(json!({})), "en");
        assert_eq!(lang(json!(null)), "en");
    }

    #[test]
    fn a_lang_given_by_the_caller_is_kept() {
        let vars = with_lang(&json!({"lang": "pt-BR", "user": {"user_metadata": {"lang": "fr"}}}));
        assert_eq!(vars["lang"], "pt-BR");
        assert_eq!(with_lang(&json!({"lang": null, "request_language": "fr"}))["lang"], "fr");
    }

    #[test]
    fn missing_keys_and_nulls_read_as_nil_at_any_depth() {
        let vars = json!({"user": {"email": "a@example.com", "name": null, "user_metadata": {}}});
        let source = "[{{ user.name }}][{{ user.user_metadata.first_name }}][{{ nothing.at.all }}]\
                      [{{ user.name.first }}][{{ user.nickname | default: 'x' }}]\
                      [{% if user.given_name == blank %}blank{% endif %}][{% if user.given_name == nil %}nil{% endif %}]\
                      [{% if application.name %}truthy{% else %}falsy{% endif %}][{% for i in user.picture %}{{ i }}{% endfor %}]";
        assert_eq!(render(source, &vars, Escape::None), "[][][][][x][blank][nil][falsy][]");
    }

    #[test]
    fn present_values_keep_their_types() {
        let vars = json!({"n": 41, "f": 1.5, "b": false, "list": ["x", "y"], "o": {"k": "v"}});
        let source = "{{ n | plus: 1 }} {{ f }} {% if b %}yes{% else %}no{% endif %} {{ list | join: ',' }} \
                      {{ list.size }} {{ list.first }} {{ o.k }} {{ o.size }} {% assign t = 'local' %}{{ t }} [{{ size }}]";
        assert_eq!(render(source, &vars, Escape::None), "42 1.5 no x,y 2 x v 1 local []");
    }

    #[test]
    fn html_copy_escapes_every_string_recursively() {
        let vars = json!({"a": "<b>&\"'", "o": {"k": ["<i>"]}});
        assert_eq!(render("{{ a }} {{ o.k[0] }}", &vars, Escape::Html), "&lt;b&gt;&amp;&quot;&#39; &lt;i&gt;");
        assert_eq!(render("{{ a }} {{ o.k[0] }}", &vars, Escape::None), "<b>&\"' <i>");
    }

    #[test]
    fn header_line_removes_line_breaks_and_controls() {
        assert_eq!(header_line("  Hi x\r\nBcc: evil@x\u{0}\t y \n"), "Hi x Bcc: evil@x y");
        assert_eq!(header_line("a\u{2028}b\u{85}c"), "a b c");
    }
}
