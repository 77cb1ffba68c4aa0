//! Page templates: `templates/web/*.html`, compiled into the binary (the pages are part of
//! the program, not helpdesk-editable like the reply templates). Auto-escaping is on for
//! every template; the only markup inserted unescaped is the sanitised mail HTML
//! (`|safe` in `_mail.html`, produced by `mail_view::sanitize_html`).

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, State, Value};

use super::WebError;

const PAGES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../../templates/web/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../templates/web/login.html"),
    ),
    (
        "queue.html",
        include_str!("../../../templates/web/queue.html"),
    ),
    (
        "item.html",
        include_str!("../../../templates/web/item.html"),
    ),
    (
        "message.html",
        include_str!("../../../templates/web/message.html"),
    ),
    (
        "_mail.html",
        include_str!("../../../templates/web/_mail.html"),
    ),
    (
        "_outgoing.html",
        include_str!("../../../templates/web/_outgoing.html"),
    ),
    (
        "preview.html",
        include_str!("../../../templates/web/preview.html"),
    ),
    (
        "outgoing.html",
        include_str!("../../../templates/web/outgoing.html"),
    ),
    (
        "history.html",
        include_str!("../../../templates/web/history.html"),
    ),
    (
        "audit.html",
        include_str!("../../../templates/web/audit.html"),
    ),
    (
        "import.html",
        include_str!("../../../templates/web/import.html"),
    ),
    (
        "error.html",
        include_str!("../../../templates/web/error.html"),
    ),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);

/// The pages' environment: every template in [`PAGES`], the filters and the globals.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    for (name, source) in PAGES {
        // A broken built-in template is a bug caught by the tests; the page reports it.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "page template does not compile");
        }
    }
    env.add_filter("datetime", datetime);
    env.add_filter("age", age);
    env.add_filter("json_list", json_list);
    env.add_filter("reason", reason);
    env.add_filter("size", size);
    // Shown to signed-in staff in the footer, so a problem report names the build.
    env.add_global("version", crate::VERSION);
    env
}

/// Renders a page.
pub fn page(name: &str, ctx: Value) -> Result<Response, WebError> {
    let tpl = ENV
        .get_template(name)
        .map_err(|e| WebError::Internal(anyhow::anyhow!("template {name}: {e}")))?;
    let html = tpl
        .render(ctx)
        .map_err(|e| WebError::Internal(anyhow::anyhow!("template {name}: {e:#}")))?;
    Ok(Html(html).into_response())
}

/// An error page (no session needed: it shows the message and a way back).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let ctx = minijinja::context! {
        status => status.as_u16(),
        title => status.canonical_reason().unwrap_or("Error"),
        message => message,
    };
    match ENV.get_template("error.html").and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

/// `ms|datetime`: `2026-11-26 09:00` in the pages' time zone (`tz` in the context).
fn datetime(state: &State, ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
        return String::new();
    };
    let tz_name = state
        .lookup("tz")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "UTC".into());
    let tz = jiff::tz::TimeZone::get(&tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
    ts.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string()
}

/// `ms|age`: how long ago, relative to `now` in the context (`45s`, `12m`, `3h`, `5d`).
fn age(state: &State, ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let now = state
        .lookup("now")
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(ms);
    let s = ((now - ms) / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `text|json_list`: a stored JSON list as a list (empty when it does not parse).
fn json_list(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// `code|reason`: a review reason in words.
fn reason(code: String) -> String {
    crate::review::detail::ReasonView::new(&code).description
}

/// `bytes|size`: `812 B`, `14.2 KB`, `3.1 MB`.
fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    if b < 1024.0 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KB", b / 1024.0)
    } else {
        format!("{:.1} MB", b / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The innermost template error (an include wraps the included template's error).
    fn root_cause(e: &minijinja::Error) -> &minijinja::Error {
        let mut e = e;
        while let Some(inner) =
            std::error::Error::source(e).and_then(|s| s.downcast_ref::<minijinja::Error>())
        {
            e = inner;
        }
        e
    }

    #[test]
    fn every_page_template_compiles_and_renders() {
        // The production environment: a template that does not compile is left out of it
        // (and only logged), so `get_template` fails here.
        let mut env = environment();
        // Render without data: undefined values chain instead of failing, so what is left
        // to fail is the template itself (unknown filters or tests, wrong arguments). A
        // filter that needs a value and gets none is the one failure due to the missing data.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        let mut broken = Vec::new();
        for (name, _) in PAGES {
            let tpl = env
                .get_template(name)
                .unwrap_or_else(|e| panic!("{name} does not compile: {e:#}"));
            if let Err(e) = tpl.render(minijinja::context! {}) {
                let root = root_cause(&e);
                let no_data = root.kind() == minijinja::ErrorKind::InvalidOperation
                    && root.detail().is_some_and(|d| d.contains("undefined"));
                if !no_data {
                    broken.push(format!("{name}: {root:#}"));
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
    }

    #[test]
    fn error_page_escapes_its_message() {
        let res = error_page(StatusCode::BAD_REQUEST, "<script>x</script>");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body =
            futures::executor::block_on(axum::body::to_bytes(res.into_body(), 1 << 20)).unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("&lt;script&gt;x"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
    }
}
