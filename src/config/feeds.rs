//! `[api]`, `[import]` and the default `[carriers]`: how data from the systems of record comes
//! in (`[rma]`, where labels are kept, is in `live.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[api]`: the JSON API under `/api/v1` on the web listener (bearer tokens, see
/// `trialdesk tokens`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve `/api/v1` beside the review pages (`run` and `web`).
    pub enabled: bool,
    /// Largest JSON request body (bytes); a larger one is refused with 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            max_body_bytes: 4 << 20,
        }
    }
}

impl ApiConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(invalid("api.max_body_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}

/// `[import]`: the drop folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Folder watched by `run`: `partners*.csv`, `shipments*.csv` and `trials*.csv` renamed
    /// into it are imported (all or nothing) and moved to `done/` or `failed/` (with a
    /// `.errors.txt`). Unset: no drop folder.
    pub watch_dir: Option<PathBuf>,
    /// How often the folder is looked at.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            watch_dir: None,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl ImportConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval < Duration::from_millis(50)
            || self.poll_interval > Duration::from_secs(3600)
        {
            return Err(invalid(
                "import.poll_interval",
                "must be between 50ms and 1h",
            ));
        }
        Ok(())
    }
}

/// Tracking-link patterns shipped for the carriers of the region, by the names used in the
/// shipments CSV (matching ignores case). `[carriers]` entries win over these.
pub const DEFAULT_CARRIERS: &[(&str, &str)] = &[
    (
        "SF Express",
        "https://www.sf-express.com/chn/sc/waybill/waybill-detail/{tracking_number}",
    ),
    (
        "JD Logistics",
        "https://www.jdl.com/orderSearch/?waybillCodes={tracking_number}",
    ),
    (
        "EMS",
        "https://www.ems.com.cn/queryList?mailNum={tracking_number}",
    ),
    (
        "China Post",
        "https://yjcx.chinapost.com.cn/qps/yjcx?si={tracking_number}",
    ),
    (
        "Yamato",
        "https://toi.kuronekoyamato.co.jp/cgi-bin/tneko?number01={tracking_number}",
    ),
    (
        "Sagawa",
        "https://k2k.sagawa-exp.co.jp/p/web/okurijosearch.do?okurijoNo={tracking_number}",
    ),
    (
        "Japan Post",
        "https://trackings.post.japanpost.jp/services/srv/search/direct?reqCodeNo1={tracking_number}&searchKind=S002&locale=ja",
    ),
    (
        "DHL",
        "https://www.dhl.com/global-en/home/tracking/tracking-express.html?submit=1&tracking-id={tracking_number}",
    ),
    (
        "FedEx",
        "https://www.fedex.com/fedextrack/?trknbr={tracking_number}",
    ),
    ("UPS", "https://www.ups.com/track?tracknum={tracking_number}"),
];

/// Other names the same carriers go by in shipment data.
const CARRIER_ALIASES: &[(&str, &str)] = &[
    ("SF", "SF Express"),
    ("顺丰", "SF Express"),
    ("顺丰速运", "SF Express"),
    ("JD", "JD Logistics"),
    ("京东物流", "JD Logistics"),
    ("中国邮政", "China Post"),
    ("China Post EMS", "EMS"),
    ("Yamato Transport", "Yamato"),
    ("ヤマト運輸", "Yamato"),
    ("Sagawa Express", "Sagawa"),
    ("佐川急便", "Sagawa"),
    ("日本郵便", "Japan Post"),
    ("DHL Express", "DHL"),
];

/// Lower-cased carrier name → URL pattern: the shipped defaults (and their aliases), then
/// `configured` on top.
pub fn carrier_links(configured: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = DEFAULT_CARRIERS
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.to_string()))
        .collect();
    for (alias, name) in CARRIER_ALIASES {
        if let Some(p) = out.get(&name.to_lowercase()).cloned() {
            out.insert(alias.to_lowercase(), p);
        }
    }
    for (k, v) in configured {
        out.insert(k.trim().to_lowercase(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_https_with_the_placeholder() {
        let names: Vec<&str> = DEFAULT_CARRIERS.iter().map(|(n, _)| *n).collect();
        for wanted in [
            "SF Express",
            "JD Logistics",
            "EMS",
            "China Post",
            "Yamato",
            "Sagawa",
            "Japan Post",
            "DHL",
            "FedEx",
            "UPS",
        ] {
            assert!(names.contains(&wanted), "{wanted} missing");
        }
        for (name, url) in DEFAULT_CARRIERS {
            assert!(url.starts_with("https://"), "{name}: {url}");
            assert_eq!(url.matches("{tracking_number}").count(), 1, "{name}: {url}");
        }
    }

    #[test]
    fn configured_patterns_win_and_aliases_follow_the_defaults() {
        let configured = BTreeMap::from([(
            " ems ".to_string(),
            "https://ems.example/t?no={tracking_number}".to_string(),
        )]);
        let links = carrier_links(&configured);
        assert_eq!(links["ems"], "https://ems.example/t?no={tracking_number}");
        assert_eq!(links["sf express"], links["顺丰"]);
        assert!(links["ups"].contains("ups.com"));
        assert_eq!(links["ヤマト運輸"], links["yamato"]);
    }
}
