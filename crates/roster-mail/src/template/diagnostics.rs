//! Turns a liquid error into a [`TemplateError`]: which part, which line, what is wrong, on one line.
//!
//! liquid 0.26 has no accessors on its errors, only their `Display`, which looks like
//!
//! ```text
//! liquid:  --> 3:4            (parse errors: line:column)
//!   |
//! 3 | {% endif %}
//!   |    ^---^
//!   |
//!   = Unknown tag.
//!   with:
//!     requested=endif
//!     available tags=assign, break, …
//! from: {% include "x" %}     (render errors: the tag being rendered)
//! ```
//!
//! The line comes from the `-->` position when there is one. Two cases are located here instead: an
//! unclosed block, which liquid reports at the end of the template while the author needs the line of
//! the tag left open; and errors without a position (an unknown filter, a missing partial), located by
//! scanning the template's tags for the filter or partial named in the error. The message keeps only
//! the diagnostic and its `with:` details, minus the long `available …` lists; it must never carry the
//! quoted source lines, the `from:` trace, or anything that is not about the template (no paths).

use super::TemplateError;

/// Longest message kept, in characters.
const MAX_MESSAGE: usize = 300;

pub(super) fn diagnose(field: &'static str, source: &str, error: &liquid::Error) -> TemplateError {
    let report = Report::parse(&error.to_string());
    let named = |key: &str| report.context.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());

    let located = if report.message.starts_with("Unclosed block") {
        unclosed_block_line(source)
    } else if let Some(filter) = named("requested filter") {
        find_tag_line(source, |tag| filters(tag.inner).any(|f| f == filter))
    } else if let (true, Some(partial)) = (report.message.starts_with("Partial does not exist"), named("name")) {
        find_tag_line(source, |tag| matches!(tag.word(), "include" | "render") && tag.inner.contains(partial))
    } else {
        None
    };

    let mut message = report.message.clone();
    let details: Vec<String> = report
        .context
        .iter()
        .filter(|(key, _)| !key.starts_with("available"))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if !details.is_empty() {
        message = format!("{message} ({})", details.join(", "));
    }
    let mut message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if message.chars().count() > MAX_MESSAGE {
        message = message.chars().take(MAX_MESSAGE).collect::<String>() + "…";
    }
    TemplateError { field, line: located.or(report.line), message }
}

/// The useful parts of liquid's error text.
#[derive(Debug, Default, PartialEq)]
struct Report {
    line: Option<usize>,
    message: String,
    context: Vec<(String, String)>,
}

impl Report {
    fn parse(shown: &str) -> Self {
        let shown = shown.strip_prefix("liquid:").unwrap_or(shown);
        let mut report = Report::default();
        let mut parts: Vec<&str> = Vec::new();
        let mut in_context = false;
        for (i, raw) in shown.lines().enumerate() {
            let line = raw.trim();
            if let Some(position) = line.strip_prefix("-->") {
                report.line = position.trim().split(':').next().and_then(|l| l.parse().ok());
            } else if line == "with:" {
                in_context = true;
            } else if line.starts_with("from:") {
                in_context = false;
            } else if in_context {
                if let Some((key, value)) = line.split_once('=') {
                    report.context.push((key.trim().to_owned(), value.trim().to_owned()));
                }
            } else if let Some(note) = line.strip_prefix("= ") {
                parts.push(note);
            } else if i == 0 && !line.is_empty() {
                parts.push(line);
            }
            // Anything else is the quoted source and its carets: left out.
        }
        report.message = parts.join(" ");
        if report.message.is_empty() {
            report.message = "invalid template".to_owned();
        }
        report
    }
}

/// A `{{ … }}` or `{% … %}` in a template.
#[derive(Debug, PartialEq)]
struct TagRef<'a> {
    /// 1-based line of the opening braces.
    line: usize,
    /// `{% … %}` rather than `{{ … }}`.
    is_tag: bool,
    /// Between the delimiters, without whitespace-control dashes, trimmed.
    inner: &'a str,
}

impl<'a> TagRef<'a> {
    /// The tag's name (`if`, `endfor`…); empty for an output.
    fn word(&self) -> &'a str {
        if self.is_tag { self.inner.split_whitespace().next().unwrap_or("") } else { "" }
    }
}

/// The tags and outputs of `source`, in order; the content of `raw` and `comment` blocks is skipped.
fn scan(source: &str) -> Vec<TagRef<'_>> {
    let mut found = Vec::new();
    let mut pos = 0;
    let mut opaque_until: Option<&str> = None;
    while let Some(offset) = source[pos..].find('{') {
        let start = pos + offset;
        let rest = &source[start..];
        let close = if rest.starts_with("{{") {
            "}}"
        } else if rest.starts_with("{%") {
            "%}"
        } else {
            pos = start + 1;
            continue;
        };
        let Some(len) = rest[2..].find(close) else { break };
        let inner = rest[2..2 + len].trim_start_matches('-').trim_end_matches('-').trim();
        pos = start + 2 + len + 2;
        let tag = TagRef { line: 1 + source[..start].matches('\n').count(), is_tag: close == "%}", inner };
        if let Some(end) = opaque_until {
            if tag.word() == end {
                opaque_until = None;
                found.push(tag);
            }
            continue;
        }
        opaque_until = match tag.word() {
            "raw" => Some("endraw"),
            "comment" => Some("endcomment"),
            _ => None,
        };
        found.push(tag);
    }
    found
}

/// The line of the innermost block tag still open at the end of `source`.
fn unclosed_block_line(source: &str) -> Option<usize> {
    const BLOCKS: [&str; 9] = ["if", "unless", "for", "case", "capture", "tablerow", "ifchanged", "raw", "comment"];
    let mut open: Vec<(&str, usize)> = Vec::new();
    for tag in scan(source) {
        let word = tag.word();
        if BLOCKS.contains(&word) {
            open.push((word, tag.line));
        } else if let Some(block) = word.strip_prefix("end")
            && let Some(at) = open.iter().rposition(|(name, _)| *name == block)
        {
            open.truncate(at);
        }
    }
    open.last().map(|(_, line)| *line)
}

fn find_tag_line(source: &str, wanted: impl Fn(&TagRef<'_>) -> bool) -> Option<usize> {
    scan(source).iter().find(|tag| wanted(tag)).map(|tag| tag.line)
}

/// The names of the filters applied in a tag or output (`a | upcase | append: "x"` → upcase, append).
fn filters(inner: &str) -> impl Iterator<Item = &str> {
    inner.split('|').skip(1).filter_map(|segment| segment.split([':', ' ', '\t', '\n']).find(|w| !w.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnose_source(source: &str) -> TemplateError {
        let parser = liquid::ParserBuilder::with_stdlib().build().expect("stdlib parser");
        let error = match parser.parse(source) {
            Err(error) => error,
            Ok(template) => template.render(&liquid::object!({})).expect_err("the template should fail"),
        };
        diagnose("body", source, &error)
    }

    #[test]
    fn parse_error_takes_the_line_from_the_position() {
        let error = diagnose_source("one\ntwo\nthree {% endif %}\n");
        assert_eq!(error.line, Some(3));
        assert_eq!(error.message, "Unknown tag. (requested=endif)");
    }

    #[test]
    fn unclosed_block_points_at_the_opening_tag() {
        let error =
            diagnose_source("<p>\n{% for x in list %}{% endfor %}\n{% if user.name %}\nHi\n{% if a %}b{% endif %}\n</p>\n");
        assert_eq!(error.line, Some(3));
        assert_eq!(error.message, "Unclosed block. {% endif %} tag expected.");
    }

    #[test]
    fn unknown_filter_is_located_by_name() {
        let error = diagnose_source("a\n{{ x | upcase }}\n  {{ x | upcase | shout: 2 }}");
        assert_eq!(error.line, Some(3));
        assert_eq!(error.message, "Unknown filter (requested filter=shout)");
    }

    #[test]
    fn missing_partial_is_located_by_name() {
        let error = diagnose_source("a\n\n{% include 'footer' %}");
        assert_eq!(error.line, Some(3));
        assert_eq!(error.message, "Partial does not exist (name=footer)");
    }

    #[test]
    fn raw_and_comment_content_is_not_scanned() {
        let source = "{% raw %}{% if %}{% endraw %}\n{% comment %}{% for %}{% endcomment %}\n{% unless a %}";
        assert_eq!(unclosed_block_line(source), Some(3));
    }

    #[test]
    fn report_keeps_only_diagnostics() {
        let shown = "liquid:  --> 2:7\n  |\n2 | {% for %}\n  |       ^---\n  |\n  = Identifier expected.\n";
        let report = Report::parse(shown);
        assert_eq!(report, Report { line: Some(2), message: "Identifier expected.".into(), context: vec![] });
        let shown = "liquid: Partial does not exist\n  with:\n    name=x\nfrom: {% include \"x\" %}\n";
        let report = Report::parse(shown);
        assert_eq!(report.message, "Partial does not exist");
        assert_eq!(report.context, vec![("name".to_owned(), "x".to_owned())]);
    }
}
