//! Plugin settings (`wasi:config/store`): the `settings` table of the
//! plugin's declaration, as strings.

use std::cell::RefCell;
use std::fmt::Display;
use std::str::FromStr;

thread_local! {
    /// The keys asked for between [`start_reading`] and [`check_all_read`]:
    /// what the plugin's `new` reads, to tell a setting it never reads (a
    /// typo) from one it does. `None` outside `new`, so a plugin that reads
    /// settings per batch notes nothing (and grows nothing).
    static READ: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Start noting the keys read (the SDK calls it before the plugin's `new`).
pub(crate) fn start_reading() {
    READ.with(|read| *read.borrow_mut() = Some(Vec::new()));
}

/// The declared settings whose keys were not read since [`start_reading`]:
/// `Err` naming them, and the keys that were read, when there are any. A
/// setting the plugin never reads is most likely a typo (`thresold`), which
/// would otherwise leave the default silently in force. Stops the noting.
pub(crate) fn check_all_read(declared: &[(String, String)]) -> Result<(), String> {
    READ.with(|read| {
        let read = read.borrow_mut().take().unwrap_or_default();
        let unread: Vec<&str> = declared
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !read.iter().any(|r| r == k))
            .collect();
        if unread.is_empty() {
            return Ok(());
        }
        let mut known: Vec<&str> = read.iter().map(String::as_str).collect();
        known.sort_unstable();
        known.dedup();
        let names = |keys: &[&str]| {
            keys.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "unknown setting{} {} (this plugin reads {})",
            if unread.len() == 1 { "" } else { "s" },
            names(&unread),
            if known.is_empty() {
                "no settings".to_string()
            } else {
                names(&known)
            }
        ))
    })
}

/// The setting `key`, or `None` when it is not set. A host error is logged
/// and treated as "not set"; use [`try_get`] to see it.
pub fn get(key: &str) -> Option<String> {
    match try_get(key) {
        Ok(value) => value,
        Err(e) => {
            crate::log::warn(format!("reading setting `{key}`: {e}"));
            None
        }
    }
}

/// The setting `key`, or `None` when it is not set.
pub fn try_get(key: &str) -> Result<Option<String>, String> {
    READ.with(|read| {
        if let Some(read) = read.borrow_mut().as_mut() {
            read.push(key.to_string());
        }
    });
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::host::wasi::config::store;
        store::get(key).map_err(|e| match e {
            store::Error::Upstream(s) => format!("config upstream error: {s}"),
            store::Error::Io(s) => format!("config I/O error: {s}"),
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        Ok(None)
    }
}

/// Every setting as (key, value) pairs. Empty off wasm32.
pub fn get_all() -> Result<Vec<(String, String)>, String> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::host::wasi::config::store;
        store::get_all().map_err(|e| match e {
            store::Error::Upstream(s) => format!("config upstream error: {s}"),
            store::Error::Io(s) => format!("config I/O error: {s}"),
        })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Ok(Vec::new())
    }
}

/// The setting `key` parsed as `T`, or `default` when it is not set (or
/// blank). A value that does not parse is an error naming the key, so a
/// typo in a declaration fails loudly instead of silently using the default.
pub fn get_parsed<T>(key: &str, default: T) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    parse(key, get(key).as_deref(), default)
}

/// Parse a raw setting value (what [`get_parsed`] does after the lookup).
/// Surrounding whitespace is ignored; a missing or blank value gives
/// `default`.
pub fn parse<T>(key: &str, raw: Option<&str>, default: T) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|e| format!("setting `{key}`: invalid value `{s}`: {e}")),
    }
}

/// Split a comma-separated setting into trimmed, non-empty items.
pub fn parse_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Whether a plugin looks at metric `name`, given its `metrics` setting (a
/// list; empty means every metric) and its `ignore` setting (skipped when
/// `metrics` is empty). Shared by the shipped detectors.
pub fn selects(metrics: &[String], ignore: &[String], name: &str) -> bool {
    let named = |m: &String| crate::bytes::same(m, name);
    if metrics.is_empty() {
        !ignore.iter().any(named)
    } else {
        metrics.iter().any(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_defaults_and_errors() {
        assert_eq!(parse("n", None, 7u32), Ok(7));
        assert_eq!(parse("n", Some("  "), 7u32), Ok(7));
        assert_eq!(parse("n", Some(" 12 "), 7u32), Ok(12));
        assert_eq!(parse("b", Some("false"), true), Ok(false));
        let err = parse("threshold", Some("abc"), 3.0f64).unwrap_err();
        assert!(
            err.starts_with("setting `threshold`: invalid value `abc`"),
            "{err}"
        );
    }

    #[test]
    fn a_setting_never_read_is_named_with_the_ones_that_are() {
        let declared = |keys: &[&str]| -> Vec<(String, String)> {
            keys.iter()
                .map(|k| (k.to_string(), "1".to_string()))
                .collect()
        };
        start_reading();
        assert_eq!(check_all_read(&[]), Ok(()));
        let new = || {
            start_reading();
            let _ = get("threshold");
            let _ = get("warmup");
        };
        new();
        assert_eq!(check_all_read(&declared(&["threshold"])), Ok(()));
        new();
        assert_eq!(
            check_all_read(&declared(&["thresold", "warmup"])),
            Err("unknown setting `thresold` (this plugin reads `threshold`, `warmup`)".into())
        );
        // Reads after the check (a plugin reading settings per batch) are
        // not noted.
        let _ = get("threshold");
        READ.with(|read| assert!(read.borrow().is_none()));
        start_reading();
        assert_eq!(
            check_all_read(&declared(&["a", "b"])),
            Err("unknown settings `a`, `b` (this plugin reads no settings)".into())
        );
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list(" a, b ,,c "), vec!["a", "b", "c"]);
        assert!(parse_list(" , ").is_empty());
    }

    #[test]
    fn off_host_nothing_is_set() {
        assert_eq!(get("anything"), None);
        assert_eq!(get_parsed("anything", 5i64), Ok(5));
    }
}
