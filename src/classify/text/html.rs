//! HTML reduced to text, for reading numbers and quotes out of HTML-only mail.
//!
//! Works on untrusted input and never panics: no indexing on input-derived positions except
//! on char boundaries found by the iteration itself.

/// HTML reduced to readable text.
///
/// Own converter rather than a full renderer because what matters here is *where the
/// separators go*: block elements and `<br>` become line breaks (so quote headers such as
/// `-----原始邮件-----` stay on their own line), table cells become tabs (so adjacent cells do not
/// glue two numbers together), `<blockquote>` lines get a `> ` prefix (so quoted history is
/// recognised), `<style>`/`<script>`/`<head>` vanish, entities are decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = HtmlText::new(html.len());
    let has_head_end = contains_ignore_ascii_case(html, "</head");
    let mut rest = html;
    while let Some(pos) = rest.find(['<', '&']) {
        let (text, tail) = rest.split_at(pos);
        out.text(text);
        if let Some(after) = tail.strip_prefix('&') {
            let (decoded, consumed) = decode_entity(after);
            match decoded {
                Some(s) => {
                    out.text_decoded(&s);
                    rest = after.get(consumed..).unwrap_or("");
                }
                None => {
                    out.text("&");
                    rest = after;
                }
            }
            continue;
        }
        let after = tail.get(1..).unwrap_or("");
        if let Some(c) = after.strip_prefix("!--") {
            rest = c.find("-->").and_then(|e| c.get(e + 3..)).unwrap_or("");
            continue;
        }
        let first = after.chars().next();
        if !matches!(first, Some(c) if c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?')
        {
            out.text("<");
            rest = after;
            continue;
        }
        let end = tag_end(after);
        let inner = after.get(..end).unwrap_or("");
        rest = after.get(end + 1..).unwrap_or("");
        let closing = inner.starts_with('/');
        let name: String = inner
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match name.as_str() {
            "script" | "style" | "title" | "xml" if !closing => {
                rest = skip_past_closing(rest, &name);
            }
            "head" if !closing && has_head_end => {
                rest = skip_past_closing(rest, "head");
            }
            "br" => out.newline(true),
            "td" | "th" => out.cell(),
            "blockquote" => {
                out.newline(false);
                if closing {
                    out.quote_depth = out.quote_depth.saturating_sub(1);
                } else {
                    out.quote_depth += 1;
                }
            }
            "pre" => {
                out.newline(false);
                out.pre = !closing;
            }
            "p" | "div" | "tr" | "li" | "ul" | "ol" | "table" | "tbody" | "thead" | "tfoot"
            | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "hr" | "dd" | "dt" | "dl" | "section"
            | "article" | "header" | "footer" | "center" | "address" | "caption" | "body"
            | "html" | "form" | "fieldset" | "nav" | "main" | "aside" | "figure" => {
                out.newline(false)
            }
            _ => {}
        }
    }
    out.text(rest);
    out.finish()
}

/// Most `> ` markers put before one line. Nesting depth itself is tracked exactly, but what
/// is written is capped: a thousand nested `<blockquote>`s followed by a thousand short lines
/// would otherwise turn 20 KB of HTML into megabytes (quadratic growth).
const MAX_QUOTE_MARKERS: usize = 8;

struct HtmlText {
    buf: String,
    quote_depth: usize,
    pre: bool,
    at_line_start: bool,
    pending_space: bool,
}

impl HtmlText {
    fn new(cap: usize) -> Self {
        HtmlText {
            buf: String::with_capacity(cap / 2),
            quote_depth: 0,
            pre: false,
            at_line_start: true,
            pending_space: false,
        }
    }

    fn text(&mut self, s: &str) {
        for c in s.chars() {
            self.push_char(c);
        }
    }

    fn text_decoded(&mut self, s: &str) {
        for c in s.chars() {
            // A decoded &nbsp; is a real space, not collapsible markup white space.
            let c = if c == '\u{a0}' { ' ' } else { c };
            self.push_char(c);
        }
    }

    fn push_char(&mut self, c: char) {
        if self.pre && (c == '\n' || c == '\r') {
            if c == '\n' {
                self.newline(true);
            }
            return;
        }
        if c.is_whitespace() && c != '\u{3000}' {
            if !self.at_line_start {
                self.pending_space = true;
            }
            return;
        }
        if c == '\0' {
            return;
        }
        if self.at_line_start {
            for _ in 0..self.quote_depth.min(MAX_QUOTE_MARKERS) {
                self.buf.push_str("> ");
            }
            self.at_line_start = false;
        } else if self.pending_space {
            self.buf.push(' ');
        }
        self.pending_space = false;
        self.buf.push(c);
    }

    fn newline(&mut self, always: bool) {
        if always || !self.at_line_start {
            if self.at_line_start && self.quote_depth > 0 {
                for _ in 0..self.quote_depth.min(MAX_QUOTE_MARKERS) {
                    self.buf.push('>');
                }
            }
            self.buf.push('\n');
        }
        self.at_line_start = true;
        self.pending_space = false;
    }

    fn cell(&mut self) {
        if !self.at_line_start && !self.buf.ends_with('\t') {
            self.buf.push('\t');
            self.pending_space = false;
        }
    }

    fn finish(self) -> String {
        let mut out = String::with_capacity(self.buf.len());
        let mut blank_run = 0;
        for line in self.buf.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            out.push_str(line);
            out.push('\n');
        }
        let trimmed = out.trim_matches('\n');
        trimmed.to_string()
    }
}

/// Byte offset of the `>` that closes a tag starting at `s` (attribute quotes respected);
/// `s.len()` when unterminated.
fn tag_end(s: &str) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '>' => return i,
            None => {}
        }
    }
    s.len()
}

fn skip_past_closing<'a>(s: &'a str, name: &str) -> &'a str {
    let needle = format!("</{name}");
    match find_ignore_ascii_case(s, &needle) {
        Some(pos) => {
            let after = s.get(pos..).unwrap_or("");
            match after.find('>') {
                Some(e) => after.get(e + 1..).unwrap_or(""),
                None => "",
            }
        }
        None => "",
    }
}

fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    find_ignore_ascii_case(hay, needle).is_some()
}

/// Byte position of an ASCII `needle` in `hay`, ignoring ASCII case.
pub fn find_ignore_ascii_case(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if n.is_empty() {
        return Some(0);
    }
    if h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| {
        h.get(i..i + n.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(n))
    })
}

/// Decodes the entity after a `&`; returns the text and how many bytes after `&` it used.
fn decode_entity(s: &str) -> (Option<String>, usize) {
    let end = s
        .char_indices()
        .take(32)
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '#'))
        .map(|(i, _)| i)
        .unwrap_or_else(|| s.len().min(32));
    let name = s.get(..end).unwrap_or("");
    let has_semicolon = s.get(end..).is_some_and(|r| r.starts_with(';'));
    let consumed = end + usize::from(has_semicolon);
    if let Some(num) = name.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix(['x', 'X']) {
            u32::from_str_radix(hex, 16).ok()
        } else {
            num.parse::<u32>().ok()
        };
        return match code.and_then(char::from_u32) {
            Some(c) if c != '\0' => (Some(c.to_string()), consumed),
            _ => (None, 0),
        };
    }
    let decoded = match name {
        "nbsp" => "\u{a0}",
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ if !has_semicolon => return (None, 0),
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "ndash" => "–",
        "mdash" => "—",
        "hellip" => "…",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "laquo" => "«",
        "raquo" => "»",
        "bull" => "•",
        "middot" => "·",
        "euro" => "€",
        "yen" => "¥",
        "times" => "×",
        "auml" => "ä",
        "ouml" => "ö",
        "uuml" => "ü",
        "Auml" => "Ä",
        "Ouml" => "Ö",
        "Uuml" => "Ü",
        "szlig" => "ß",
        "eacute" => "é",
        "egrave" => "è",
        "agrave" => "à",
        "aacute" => "á",
        "ccedil" => "ç",
        "ensp" | "emsp" | "thinsp" => " ",
        "zwnj" | "zwj" | "shy" => "",
        _ => return (None, 0),
    };
    (Some(decoded.to_string()), consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_blockquotes_do_not_multiply_the_text() {
        let html = format!("{}{}", "<blockquote>".repeat(5000), "<br>x".repeat(5000));
        let text = html_to_text(&html);
        assert!(
            text.len() < 25 * html.len(),
            "{} from {}",
            text.len(),
            html.len()
        );
        assert!(text
            .lines()
            .last()
            .unwrap()
            .starts_with("> > > > > > > > x"));
        assert_eq!(
            html_to_text("<blockquote><blockquote>a</blockquote></blockquote>b"),
            "> > a\nb"
        );
    }

    #[test]
    fn html_table_cells_and_entities() {
        let html = "<html><head><style>p{x:1}</style><title>t</title></head><body>\
            <p>Hello&nbsp;world &amp; co&#46;</p><table><tr><td>D1234567</td><td>D7654321</td></tr>\
            <tr><td><span>A</span></td><td>B<o:p></o:p></td></tr></table>\
            Gr&uuml;&szlig;e<br>X &lt;x@y&gt; &unknown; &#x4E2D;</body></html>";
        let t = html_to_text(html);
        assert_eq!(
            t,
            "Hello world & co.\nD1234567\tD7654321\nA\tB\nGrüße\nX <x@y> &unknown; 中"
        );
    }

    #[test]
    fn html_blockquote_is_prefixed_and_comments_dropped() {
        let html = "<div>fresh</div><!-- D0000000 --><blockquote><p>old D1111111</p><p>more</p></blockquote><p>after</p>";
        assert_eq!(html_to_text(html), "fresh\n> old D1111111\n> more\nafter");
    }

    #[test]
    fn html_odd_input_does_not_panic() {
        for s in [
            "<",
            "&",
            "&#",
            "&#x;",
            "&#99999999999;",
            "<a href='>",
            "<!--",
            "<script>",
            "<<>>",
            "a < b > c",
            "&nbsp",
            "<p",
            "<head>x",
            "é<é>&é;",
        ] {
            let _ = html_to_text(s);
        }
        assert_eq!(html_to_text("a < b"), "a < b");
        assert_eq!(html_to_text("<head>x"), "x");
    }
}
