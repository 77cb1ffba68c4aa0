//! `trialdesk explain FILE.eml`: exactly one JSON object on stdout.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::app::App;
use crate::classify::{subject::reply_subject, Action};
use crate::domain::LoanNumber;

#[derive(Serialize)]
struct Explanation<'a> {
    kind: &'static str,
    action: &'static str,
    loan_numbers: &'a [LoanNumber],
    language: &'static str,
    sender: Option<&'a str>,
    partner_id: Option<&'a str>,
    reasons: Vec<String>,
    reply: Option<ReplyPreview>,
}

#[derive(Serialize)]
struct ReplyPreview {
    to: String,
    subject: String,
    in_reply_to: Option<String>,
}

pub async fn run(app: &App, file: &Path) -> anyhow::Result<()> {
    let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let eval = app.evaluator().evaluate(&raw, raw.len() as u64).await?;
    let d = &eval.decision;
    let i = &eval.inspection;
    let mut reasons = d.reasons.clone();
    for r in &d.review {
        let tag = format!("review:{}", r.code());
        if !reasons.contains(&tag) {
            reasons.push(tag);
        }
    }
    let reply = match (d.action, &d.reply_to) {
        (Action::Reply, Some(to)) => Some(ReplyPreview {
            to: to.address.clone(),
            subject: reply_subject(&i.subject),
            in_reply_to: i.message_id.as_ref().map(|m| format!("<{m}>")),
        }),
        _ => None,
    };
    let out = Explanation {
        kind: d.kind.code(),
        action: d.action.code(),
        loan_numbers: &i.loan_numbers,
        language: d.language.code(),
        sender: i.from.as_ref().map(|f| f.address.as_str()),
        partner_id: d.partner_id.as_deref(),
        reasons,
        reply,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
