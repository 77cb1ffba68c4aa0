//! Page templates: `templates/web/*.html`, compiled into the binary (the pages are part of
//! the program, not helpdesk-editable like the reply templates). Auto-escaping is on for
//! every template; the only markup inserted unescaped is the sanitised mail HTML
//! (`|safe` in `_mail.html`, produced by `mail_view::sanitize_html`).

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Kwargs;
use minijinja::{AutoEscape, Environment, State, Value};

use super::i18n::{self, Lang};
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
    (
        "settings.html",
        include_str!("../../../templates/web/settings.html"),
    ),
    (
        "_context.html",
        include_str!("../../../templates/web/_context.html"),
    ),
    (
        "reports.html",
        include_str!("../../../templates/web/reports.html"),
    ),
    (
        "_snippets.html",
        include_str!("../../../templates/web/_snippets.html"),
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
    env.add_filter("reason_short", reason_short);
    env.add_filter("label", label);
    env.add_filter("size", size);
    env.add_filter("percent", percent);
    env.add_function("t", translate);
    // Shown to signed-in staff in the footer, so a problem report names the build.
    env.add_global("version", crate::VERSION);
    env
}

/// Renders a page in the viewer's language and time zone (see [`i18n`]).
pub fn page(name: &str, ctx: Value) -> Result<Response, WebError> {
    Ok(Html(render(name, ctx)?).into_response())
}

/// Renders a template to a string (pages and page fragments), as [`page`] does.
pub fn render(name: &str, ctx: Value) -> Result<String, WebError> {
    let tpl = ENV
        .get_template(name)
        .map_err(|e| WebError::Internal(anyhow::anyhow!("template {name}: {e}")))?;
    tpl.render(with_viewer(ctx))
        .map_err(|e| WebError::Internal(anyhow::anyhow!("template {name}: {e:#}")))
}

/// `ctx` plus who is looking: `lang`, `lang_tag`, `tz`.
fn with_viewer(ctx: Value) -> Value {
    let v = i18n::viewer();
    minijinja::context! {
        lang => v.lang.code(),
        lang_tag => v.lang.html_tag(),
        tz => v.tz,
        ..ctx
    }
}

/// A catalog text in the viewer's language (for the few texts built outside templates:
/// error pages and the page title count).
pub fn text(key: &str, args: &[(&str, String)]) -> String {
    i18n::text(i18n::viewer().lang, key, args)
}

/// An error page (no session needed: it shows the message and a way back).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let ctx = with_viewer(minijinja::context! {
        status => status.as_u16(),
        message => message,
    });
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

/// The language of the page being rendered (`lang` in the context).
fn lang_of(state: &State) -> Lang {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(Lang::parse))
        .unwrap_or(Lang::En)
}

/// `t("key", name=value, …)`: the catalog text of `key` in the page's language.
fn translate(state: &State, key: &str, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let mut args = Vec::new();
    for name in kwargs.args() {
        let v: Value = kwargs.get(name)?;
        let text = if v.is_undefined() || v.is_none() {
            String::new()
        } else {
            v.to_string()
        };
        args.push((name, text));
    }
    Ok(i18n::text(lang_of(state), key, &args))
}

/// `code|label("group")`: the words for a stored code (`label.<group>.<code>`); the code
/// with spaces for codes the catalog does not know.
fn label(state: &State, code: Option<String>, group: &str) -> String {
    let Some(code) = code else {
        return String::new();
    };
    let key = format!("label.{group}.{code}");
    let lang = lang_of(state);
    if i18n::has(lang, &key) || i18n::has(Lang::En, &key) {
        i18n::text(lang, &key, &[])
    } else {
        code.replace('_', " ")
    }
}

/// `ms|age`: how long ago, relative to `now` in the context (`45s`, `12m`, `3h`, `5d`; in
/// the page's language).
fn age(state: &State, ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return String::new();
    };
    let now = state
        .lookup("now")
        .and_then(|v| i64::try_from(v).ok())
        .unwrap_or(ms);
    let s = ((now - ms) / 1000).max(0);
    let (key, n) = match s {
        0..=59 => ("age.s", s),
        60..=3599 => ("age.m", s / 60),
        3600..=86_399 => ("age.h", s / 3600),
        _ => ("age.d", s / 86_400),
    };
    i18n::text(lang_of(state), key, &[("n", n.to_string())])
}

/// `text|json_list`: a stored JSON list as a list (empty when it does not parse).
fn json_list(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// `code|reason`: a review reason in words.
fn reason(state: &State, code: String) -> String {
    reason_text(state, "reason", &code)
}

/// `code|reason_short`: a review reason as a short label.
fn reason_short(state: &State, code: String) -> String {
    reason_text(state, "reason_short", &code)
}

fn reason_text(state: &State, group: &str, code: &str) -> String {
    let key = format!("{group}.{code}");
    if i18n::has(Lang::En, &key) {
        i18n::text(lang_of(state), &key, &[])
    } else {
        code.replace('_', " ")
    }
}

/// `rate|percent`: `42.5%`, or `—` for none.
fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}%")).unwrap_or_else(|| "—".into())
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

    /// Every catalog key the templates name exists in both catalogs; a key built from a
    /// prefix (`t("queue.done." ~ done)`) has at least one key under that prefix.
    #[test]
    fn every_text_the_templates_use_is_in_both_catalogs() {
        let literal = regex::Regex::new(r#"\bt\("([^"]+)"\s*[,)]"#).unwrap();
        let prefix = regex::Regex::new(r#"\bt\("([^"]+)"\s*~"#).unwrap();
        let label = regex::Regex::new(r#"label\("([a-z_]+)"\)"#).unwrap();
        let mut missing = Vec::new();
        for (name, source) in PAGES {
            for lang in Lang::ALL {
                let keys = i18n::keys(lang);
                for c in literal.captures_iter(source) {
                    if !i18n::has(lang, &c[1]) {
                        missing.push(format!("{name}: {} lacks {}", lang.code(), &c[1]));
                    }
                }
                for c in prefix.captures_iter(source) {
                    if !keys.iter().any(|k| k.starts_with(&c[1])) {
                        missing.push(format!("{name}: {} lacks {}*", lang.code(), &c[1]));
                    }
                }
                for c in label.captures_iter(source) {
                    let p = format!("label.{}.", &c[1]);
                    if !keys.iter().any(|k| k.starts_with(&p)) {
                        missing.push(format!("{name}: {} lacks {p}*", lang.code()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// The codes shown through `label(…)` and the flash messages all have words.
    #[test]
    fn every_code_the_pages_show_has_words() {
        let groups: &[(&str, &[&str])] = &[
            ("label.state", &["open", "resolved"]),
            ("label.via", &["web", "cli"]),
            ("label.kind", &["tracking_request", "other", "automated"]),
            ("label.decision", &["reply", "review", "ignore"]),
            ("label.purpose", &["reply", "staff_reply", "reminder"]),
            ("label.outbox", &["queued", "sent", "dead", "discarded"]),
            ("label.import_kind", &["partners", "shipments", "trials"]),
            ("label.language", &["zh", "en", "ja", "de"]),
            (
                "label.action",
                &crate::review::web::pages::audit::AUDIT_ACTIONS,
            ),
            (
                "queue.done",
                &["answered", "resolved", "retried", "discarded"],
            ),
            (
                "item.done",
                &[
                    "reprocessed_answered",
                    "reprocessed_answered_open",
                    "reprocessed_already_answered",
                    "reprocessed_resolved",
                    "reprocessed_open",
                    "assigned",
                    "unassigned",
                    "noted",
                ],
            ),
            ("login.error", &["expired", "wrong", "limited"]),
            (
                "error.title",
                &["400", "403", "404", "409", "422", "429", "500"],
            ),
            (
                "banner",
                &["outbox_no_sender", "relay_down", "fetch_silent"],
            ),
        ];
        let statuses: Vec<&str> = crate::domain::ShipmentStatus::ALL
            .iter()
            .map(|s| s.code())
            .collect();
        for lang in Lang::ALL {
            for (group, codes) in groups
                .iter()
                .copied()
                .chain(std::iter::once(("label.shipment", statuses.as_slice())))
            {
                for code in codes {
                    let key = format!("{group}.{code}");
                    assert!(i18n::has(lang, &key), "{} lacks {key}", lang.code());
                }
            }
        }
    }

    #[test]
    fn pages_speak_the_viewers_language() {
        let ctx = minijinja::context! { user => "alice", open_total => 2, nav => "queue" };
        let zh = futures::executor::block_on(i18n::scoped(
            i18n::Viewer {
                lang: Lang::Zh,
                tz: "Asia/Shanghai".into(),
            },
            async { render("settings.html", ctx.clone()).unwrap() },
        ));
        assert!(
            zh.contains("lang=\"zh-CN\"") && zh.contains("退出登录"),
            "{zh}"
        );
        let en = futures::executor::block_on(i18n::scoped(
            i18n::Viewer {
                lang: Lang::En,
                tz: "UTC".into(),
            },
            async { render("settings.html", ctx).unwrap() },
        ));
        assert!(
            en.contains("lang=\"en\"") && en.contains("Sign out"),
            "{en}"
        );
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
