//! Plain-text helpers for the text part of an email.
//!
//! [`html_to_text`] derives a readable text part from a rendered HTML email (custom templates are HTML
//! only, as in Auth0), and [`wrap`] folds long lines for mail readers. Both are pure string functions:
//! they must never fetch anything a document refers to, and must never panic on malformed HTML: any
//! input, however broken, gives some text.

/// Elements whose content is never shown as text.
const HIDDEN: [&str; 4] = ["head", "style", "script", "title"];

/// Converts an HTML document to plain text.
///
/// Drops `<head>`, `<style>`, `<script>` and comments; turns block ends (`</p>`, `</div>`, `</h1>`…,
/// `</tr>`, `</li>`) and `<br>` into line breaks and `<li>` into `- `; writes a link as `label (href)`,
/// or just the address when the label already is it; strips every other tag; decodes the common
/// entities and numeric ones; collapses runs of whitespace within a line and runs of blank lines.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    // The open `<a>`: its href and where its label starts in `out`.
    let mut link: Option<(String, usize)> = None;
    let mut rest = html;

    while let Some(lt) = rest.find('<') {
        push_text(&mut out, &rest[..lt]);
        rest = &rest[lt..];

        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some(end) = tag_end(rest) else {
            // A `<` that opens no tag is text.
            push_text(&mut out, "<");
            rest = &rest[1..];
            continue;
        };
        let tag = Tag::parse(&rest[1..end]);
        rest = &rest[end + 1..];
        let Some(tag) = tag else {
            continue;
        };

        if !tag.closing && HIDDEN.contains(&tag.name.as_str()) {
            rest = skip_element(rest, &tag.name);
            continue;
        }
        match (tag.name.as_str(), tag.closing) {
            ("br", _) => out.push('\n'),
            ("p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "ul" | "ol", _) => end_line(&mut out, 2),
            ("div" | "tr", _) | ("li", true) => end_line(&mut out, 1),
            ("li", false) => {
                end_line(&mut out, 1);
                out.push_str("- ");
            }
            ("td" | "th", true) => out.push(' '),
            ("a", false) => link = tag.href.map(|href| (href, out.len())),
            ("a", true) => {
                if let Some((href, start)) = link.take() {
                    finish_link(&mut out, start, &href);
                }
            }
            _ => {}
        }
    }
    push_text(&mut out, rest);
    tidy(&out)
}

/// Folds every line longer than `width` characters at spaces. Words longer than `width` (a long
/// link, say) are never split: they get a line of their own.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width.max(1));
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= width {
            out.push_str(line);
            continue;
        }
        let mut column = 0;
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            let len = word.chars().count();
            if column > 0 && column + 1 + len > width {
                out.push('\n');
                column = 0;
            } else if column > 0 {
                out.push(' ');
                column += 1;
            }
            out.push_str(word);
            column += len;
        }
    }
    out
}

/// Trims the end of every line, collapses runs of blank lines into one and trims the whole.
pub(crate) fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// A start or end tag, reduced to what the conversion needs.
struct Tag {
    name: String,
    closing: bool,
    href: Option<String>,
}

impl Tag {
    /// Parses the inside of `<…>`; `None` for declarations (`<!DOCTYPE …>`) and processing instructions.
    fn parse(inner: &str) -> Option<Self> {
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, inner),
        };
        let name_len = inner.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(inner.len());
        if name_len == 0 {
            return None;
        }
        let name = inner[..name_len].to_ascii_lowercase();
        let href = if name == "a" && !closing { attribute(&inner[name_len..], "href") } else { None };
        Some(Self { name, closing, href })
    }
}

/// The index of the `>` closing the tag that starts `s` (at a `<`), skipping quoted attribute values.
/// `None` when `s` does not open a tag.
fn tag_end(s: &str) -> Option<usize> {
    let first = s[1..].chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '/' || first == '!' || first == '?') {
        return None;
    }
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The decoded value of attribute `wanted` in the attribute part of a tag.
fn attribute(mut attrs: &str, wanted: &str) -> Option<String> {
    loop {
        attrs = attrs.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if attrs.is_empty() {
            return None;
        }
        let name_len = attrs.find(|c: char| c.is_whitespace() || c == '=' || c == '/').unwrap_or(attrs.len());
        let name = &attrs[..name_len];
        attrs = attrs[name_len..].trim_start();
        let value = match attrs.strip_prefix('=') {
            None => "",
            Some(rest) => {
                let rest = rest.trim_start();
                let (value, after) = match rest.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let body = &rest[1..];
                        let end = body.find(q).unwrap_or(body.len());
                        (&body[..end], body.get(end + 1..).unwrap_or(""))
                    }
                    _ => {
                        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                        (&rest[..end], &rest[end..])
                    }
                };
                attrs = after;
                value
            }
        };
        if name.eq_ignore_ascii_case(wanted) {
            return Some(decode_entities(value).trim().to_owned());
        }
    }
}

/// Skips past the end tag of element `name` (which `rest` is the content of).
fn skip_element<'a>(rest: &'a str, name: &str) -> &'a str {
    let lower = rest.to_ascii_lowercase();
    let closing = format!("</{name}");
    match lower.find(&closing) {
        Some(start) => match rest[start..].find('>') {
            Some(end) => &rest[start + end + 1..],
            None => "",
        },
        None => "",
    }
}

/// Appends a text node: entities decoded, any whitespace (source line breaks too) as a space.
fn push_text(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.extend(decode_entities(text).chars().map(|c| if c.is_whitespace() { ' ' } else { c }));
}

/// Makes `out` end with at least `breaks` line breaks (spaces after the last one do not count), so
/// that nested blocks do not pile up blank lines.
fn end_line(out: &mut String, breaks: usize) {
    let trailing = out.trim_end_matches(' ').chars().rev().take_while(|&c| c == '\n').count();
    for _ in trailing..breaks {
        out.push('\n');
    }
}

/// Rewrites the label pushed since `start` as `label (href)`.
fn finish_link(out: &mut String, start: usize, href: &str) {
    let label = collapse_spaces(&out[start..]);
    let bare = href.strip_prefix("mailto:").unwrap_or(href);
    let text = if href.is_empty() || href.starts_with('#') || label == href || label == bare {
        label
    } else if label.is_empty() {
        bare.to_owned()
    } else {
        format!("{label} ({bare})")
    };
    out.truncate(start);
    out.push_str(&text);
}

/// Decodes `&amp; &lt; &gt; &quot; &#39; &apos; &nbsp;` and numeric references; leaves anything else.
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 12).and_then(|semi| Some((entity(&rest[1..semi])?, semi)));
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character an entity name (between `&` and `;`) stands for.
fn entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code).filter(|c| *c != '\0')
        }
    }
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Collapses spaces within each line, then blank lines, then trims.
fn tidy(text: &str) -> String {
    let lines: Vec<String> = text.lines().map(collapse_spaces).collect();
    tidy_lines(&lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_head_style_script_and_comments() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head>\
                    <body><!-- note --><script>alert(1)</script><p>Hello</p></body></html>";
        assert_eq!(html_to_text(html), "Hello");
    }

    #[test]
    fn block_ends_and_br_break_lines() {
        let html = "<h1>Title</h1><p>One<br>Two<br/>Three</p><div>Four</div><div>Five</div>";
        assert_eq!(html_to_text(html), "Title\n\nOne\nTwo\nThree\n\nFour\nFive");
    }

    #[test]
    fn table_rows_are_lines_and_cells_are_separated() {
        let html = "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>";
        assert_eq!(html_to_text(html), "a b\nc");
    }

    #[test]
    fn list_items_get_dashes() {
        let html = "<ul><li>one</li><li>two</li></ul>";
        assert_eq!(html_to_text(html), "- one\n- two");
    }

    #[test]
    fn links_show_their_address() {
        assert_eq!(html_to_text(r#"<a href="https://x.test/a?b=1&amp;c=2">Verify</a>"#), "Verify (https://x.test/a?b=1&c=2)");
        assert_eq!(html_to_text("<a href='https://x.test'>https://x.test</a>"), "https://x.test");
        assert_eq!(html_to_text(r#"<a href="mailto:help@x.test">help@x.test</a>"#), "help@x.test");
        assert_eq!(html_to_text(r#"<a href="https://x.test"></a>"#), "https://x.test");
        assert_eq!(html_to_text(r##"<a href="#top">Top</a>"##), "Top");
        assert_eq!(html_to_text("<a name=x>Anchor</a>"), "Anchor");
    }

    #[test]
    fn decodes_entities() {
        let html = "a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39; f&nbsp;g &#233; &#x263A; &bogus; & x";
        assert_eq!(html_to_text(html), "a & b <c> \"d\" 'e' f g é ☺ &bogus; & x");
    }

    #[test]
    fn decoded_markup_is_text_not_tags() {
        assert_eq!(html_to_text("&lt;script&gt;alert(1)&lt;/script&gt;"), "<script>alert(1)</script>");
    }

    #[test]
    fn collapses_whitespace_and_blank_lines() {
        let html = "  <p>  many   \n  spaces\t here </p>\n\n<p></p><p></p><br><br><br><p>end</p>  ";
        assert_eq!(html_to_text(html), "many spaces here\n\nend");
    }

    #[test]
    fn tolerates_broken_markup() {
        assert_eq!(html_to_text("a < b and c <"), "a < b and c <");
        assert_eq!(html_to_text("<p>unclosed <b"), "unclosed <b");
        assert_eq!(html_to_text("<script>never closed"), "");
        assert_eq!(html_to_text("<!-- never closed"), "");
        assert_eq!(html_to_text("<a href=\"x\">open link"), "open link");
        assert_eq!(html_to_text(""), "");
    }

    #[test]
    fn snapshot_of_a_small_document() {
        let html = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><style>td { padding: 0 }</style></head>
<body>
  <table role="presentation" width="100%"><tr><td>
    <h1>Verify your email</h1>
    <p>Hello Jane,<br>please confirm that <strong>jane@example.com</strong> is yours.</p>
    <table><tr><td style="background:#2563eb"><a href="https://id.example.com/verify?ticket=abc&amp;x=1">Verify email</a></td></tr></table>
    <p>Or paste this link: <a href="https://id.example.com/verify?ticket=abc&amp;x=1">https://id.example.com/verify?ticket=abc&amp;x=1</a></p>
    <ul><li>Fast</li><li>Safe &amp; sound</li></ul>
  </td></tr></table>
  <p style="color:#6b7280">Questions? <a href="mailto:support@example.com">support@example.com</a></p>
</body></html>"#;
        insta::assert_snapshot!(html_to_text(html));
    }

    #[test]
    fn wrap_folds_long_lines_at_spaces() {
        let text = "The quick brown fox jumps over the lazy dog and keeps running far away.\nshort";
        assert_eq!(wrap(text, 20), "The quick brown fox\njumps over the lazy\ndog and keeps\nrunning far away.\nshort");
    }

    #[test]
    fn wrap_never_splits_a_long_word() {
        let url = "https://id.example.com/verify?ticket=0123456789abcdef0123456789abcdef";
        assert_eq!(wrap(&format!("Open {url} now"), 20), format!("Open\n{url}\nnow"));
    }

    #[test]
    fn tidy_lines_collapses_blank_runs() {
        assert_eq!(tidy_lines("\n\n a  \n\n\n\nb\t\nc\n\n"), " a\n\nb\nc");
    }
}
