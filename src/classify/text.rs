//! Text helpers: HTML → text, header decoding (RFC 2047 / raw 8-bit), folding for matching.
//!
//! Everything here works on untrusted input and never panics: no indexing on input-derived
//! positions except on char boundaries found by the iteration itself.

use mail_parser::decoders::charsets::map::charset_decoder;
use unicode_normalization::UnicodeNormalization;

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
            for _ in 0..self.quote_depth {
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
                for _ in 0..self.quote_depth {
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

/// Decodes bytes in a named charset; unknown or missing labels fall back to UTF-8, and
/// invalid UTF-8 then to GB18030 (the usual culprit in this mailbox), lossily.
pub fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    if let Some(decoder) = charset
        .map(|c| c.trim().trim_matches('"'))
        .filter(|c| !c.is_empty())
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        return decoder(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => match charset_decoder(b"gb18030") {
            Some(d) => d(bytes),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

/// Decodes a raw (possibly folded) unstructured header value.
///
/// Differs from mail-parser in two ways that matter for subjects: adjacent encoded-words of
/// the same charset are decoded *together* (a client that split one multi-byte character
/// across two words still yields the character), and raw 8-bit bytes that are not UTF-8 are
/// decoded with `fallback_charset` (typically the body's charset), else GB18030.
pub fn decode_header(raw: &[u8], fallback_charset: Option<&str>) -> String {
    // Unfold: CR/LF vanish, the white space after them stays.
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n' && b != 0)
        .collect();
    let mut out = String::new();
    // Pending run of encoded-words sharing one charset: (charset, decoded bytes per word).
    let mut run: Option<(String, Vec<Vec<u8>>)> = None;
    // White space seen since the last encoded-word (dropped if another word follows).
    let mut gap: Vec<u8> = Vec::new();
    let mut plain: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < unfolded.len() {
        if unfolded.get(i) == Some(&b'=') && unfolded.get(i + 1) == Some(&b'?') {
            if let Some((charset, bytes, len)) =
                parse_encoded_word(unfolded.get(i..).unwrap_or(&[]))
            {
                flush_plain(&mut out, &mut plain, fallback_charset);
                match run.as_mut() {
                    Some((cs, pieces)) if cs.eq_ignore_ascii_case(&charset) => {
                        pieces.push(bytes);
                    }
                    _ => {
                        // White space between adjacent encoded-words is not text (RFC 2047 §6.2).
                        flush_run(&mut out, &mut run);
                        run = Some((charset, vec![bytes]));
                    }
                }
                gap.clear();
                i += len;
                continue;
            }
        }
        let b = unfolded.get(i).copied().unwrap_or(b' ');
        if run.is_some() && (b == b' ' || b == b'\t') {
            gap.push(b);
        } else {
            if run.is_some() {
                flush_run(&mut out, &mut run);
                plain.append(&mut gap);
            } else if !gap.is_empty() {
                plain.append(&mut gap);
            }
            plain.push(b);
        }
        i += 1;
    }
    flush_run(&mut out, &mut run);
    plain.append(&mut gap);
    flush_plain(&mut out, &mut plain, fallback_charset);
    let collapsed = out
        .split(|c: char| c.is_whitespace() && c != '\u{3000}')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    collapsed
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect()
}

fn flush_run(out: &mut String, run: &mut Option<(String, Vec<Vec<u8>>)>) {
    if let Some((charset, pieces)) = run.take() {
        // Joined decoding repairs characters split across words; stateful charsets
        // (ISO-2022-JP) reject back-to-back escape sequences when joined, so keep whichever
        // reading has fewer replacement characters.
        let joined = decode_charset(&pieces.concat(), Some(&charset));
        if pieces.len() > 1 {
            let separate: String = pieces
                .iter()
                .map(|p| decode_charset(p, Some(&charset)))
                .collect();
            let bad = |s: &str| s.chars().filter(|c| *c == '\u{fffd}').count();
            if bad(&separate) < bad(&joined) {
                out.push_str(&separate);
                return;
            }
        }
        out.push_str(&joined);
    }
}

fn flush_plain(out: &mut String, plain: &mut Vec<u8>, fallback: Option<&str>) {
    if plain.is_empty() {
        return;
    }
    match std::str::from_utf8(plain) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&decode_charset(plain, fallback.or(Some("gb18030")))),
    }
    plain.clear();
}

/// Parses `=?charset[*lang]?B|Q?data?=` at the start of `s`: (charset, bytes, length).
fn parse_encoded_word(s: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let body = s.get(2..)?;
    let q1 = body.iter().take(80).position(|&b| b == b'?')?;
    let charset_raw = body.get(..q1)?;
    let charset = std::str::from_utf8(charset_raw).ok()?;
    let charset = charset.split('*').next().unwrap_or("").trim();
    if charset.is_empty() || charset.contains(char::is_whitespace) {
        return None;
    }
    let enc = *body.get(q1 + 1)?;
    if body.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let data_start = q1 + 3;
    let data = body.get(data_start..)?;
    let end = data.windows(2).position(|w| w == b"?=")?;
    let payload = data.get(..end)?;
    if payload.iter().any(|b| *b == b' ' || *b == b'\t') && !enc.eq_ignore_ascii_case(&b'q') {
        return None;
    }
    let bytes = match enc {
        b'B' | b'b' => base64_lenient(payload),
        b'Q' | b'q' => q_decode(payload),
        _ => return None,
    };
    Some((charset.to_string(), bytes, 2 + data_start + end + 2))
}

/// Base64 that tolerates missing padding and stray characters (broken encoders abound).
pub fn base64_lenient(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in data {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

fn q_decode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        match data.get(i).copied() {
            Some(b'_') => out.push(b' '),
            Some(b'=') => {
                let h = data
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if let Some(v) = h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'=');
            }
            Some(b) => out.push(b),
            None => break,
        }
        i += 1;
    }
    out
}

/// Folds a phrase for tolerant comparison: NFKC (full-width → ASCII, half-width kana →
/// full-width), lower case, and *all* white space and invisible format characters removed,
/// so "Ｔｒｉａｌ　Endpoint\r\n Tracking" and "trialendpointtracking" compare equal.
pub fn fold_for_match(s: &str) -> String {
    let keep = |c: &char| !c.is_whitespace() && !is_invisible(*c);
    if s.is_ascii() {
        return s
            .chars()
            .filter(keep)
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    s.nfkc().flat_map(char::to_lowercase).filter(keep).collect()
}

/// Zero-width and format characters that mail clients sprinkle into subjects.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}' | '\u{202a}'..='\u{202e}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn header_decoding() {
        for (raw, want) in [
            (&b"=?utf-8?b?6K+V55So57uI5w==?=\r\n =?UTF-8?B?q6/ov73ouKror7fmsYI=?="[..], "试用终端追踪请求"),
            (b"=?utf-8?Q?Re=3A_=E8=AF=95?= =?utf-8?Q?=E7=94=A8?=", "Re: 试用"),
            (b"Re: =?utf-8?B?5Zue?= x", "Re: 回 x"),
            (b"a =?iso-8859-1?q?J=FCrgen?= =?utf-8?b?w7w=?= b", "a Jürgenü b"),
            (b"=?broken", "=?broken"),
            (b"=?utf-8?x?abc?=", "=?utf-8?x?abc?="),
            ("转发: 试用终端追踪请求".as_bytes(), "转发: 试用终端追踪请求"),
            (b"  lots   of\r\n\tspace ", "lots of space"),
            (
                b"=?ISO-2022-JP?B?GyRCJUglaSUkJSIla01RGyhC?=\r\n =?ISO-2022-JP?B?GyRCJSglcyVJGyhC?=",
                "トライアル用エンド",
            ),
        ] {
            assert_eq!(decode_header(raw, None), want, "{raw:?}");
        }
        // Raw GBK bytes: fallback charset.
        let gbk = [0xca, 0xd4, 0xd3, 0xc3];
        assert_eq!(decode_header(&gbk, Some("gbk")), "试用");
        assert_eq!(decode_header(&gbk, None), "试用");
    }

    #[test]
    fn base64_is_lenient() {
        assert_eq!(base64_lenient(b"QUJD"), b"ABC");
        assert_eq!(base64_lenient(b"QUJ"), b"AB");
        assert_eq!(base64_lenient(b"QU\r\nJD=="), b"ABC");
        assert_eq!(base64_lenient(b"!!"), b"");
    }

    #[test]
    fn folding() {
        assert_eq!(
            fold_for_match("Ｔｒｉａｌ　Endpoint\r\n Tracking\u{200b}"),
            "trialendpointtracking"
        );
        assert_eq!(fold_for_match("ﾄﾗｲｱﾙ"), "トライアル");
    }

    #[test]
    fn charset_fallbacks() {
        assert_eq!(decode_charset(&[0xca, 0xd4], Some("gb2312")), "试");
        assert_eq!(decode_charset("ü".as_bytes(), Some("x-unknown")), "ü");
        assert_eq!(decode_charset(&[0xca, 0xd4], None), "试");
    }
}
