//! MQTT topic filters: validation and a trie for dispatching a topic to every
//! filter that matches it (`+` one level, `#` this level and all below; a
//! leading wildcard does not match topics starting with `$`, per MQTT 3.1.1 §4.7.2).

use crate::error::{Span, SqlError};
use std::collections::HashMap;

/// Check an MQTT topic filter; the error says what is wrong.
pub fn validate_topic_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter cannot be empty".into());
    }
    if filter.len() > 65_535 {
        return Err("a topic filter is at most 65535 bytes".into());
    }
    if filter.contains('\0') {
        return Err("a topic filter cannot contain the NUL character".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != last) {
            return Err("`#` must be a whole level and the last one".into());
        }
        if level.contains('+') && *level != "+" {
            return Err("`+` must be a whole level".into());
        }
    }
    Ok(())
}

/// The level separator, as a predicate: `split('/')` compares each hit
/// with a `memcmp` call, a predicate does not.
pub fn is_separator(c: char) -> bool {
    c == '/'
}

/// Does `topic` match `filter`? (Both assumed valid.)
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split(is_separator);
    let mut t = topic.split(is_separator);
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[derive(Debug)]
struct TrieNode<T> {
    /// Keyed by level; hashed with foldhash (the levels are the operator's
    /// filters, so a device's topic cannot crowd the table).
    children: HashMap<String, TrieNode<T>, foldhash::fast::RandomState>,
    plus: Option<Box<TrieNode<T>>>,
    /// Values whose filter ends with `#` at this node.
    hash: Vec<T>,
    /// Values whose filter ends exactly at this node.
    here: Vec<T>,
}

impl<T> Default for TrieNode<T> {
    fn default() -> Self {
        TrieNode {
            children: HashMap::default(),
            plus: None,
            hash: Vec::new(),
            here: Vec::new(),
        }
    }
}

impl<T> TrieNode<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.here.is_empty()
    }
}

/// A trie of topic filters, each holding values. Several values may share a filter.
#[derive(Debug)]
pub struct TopicTrie<T> {
    root: TrieNode<T>,
    len: usize,
}

impl<T> Default for TopicTrie<T> {
    fn default() -> Self {
        TopicTrie {
            root: TrieNode::default(),
            len: 0,
        }
    }
}

impl<T> TopicTrie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `value` under `filter`.
    pub fn insert(&mut self, filter: &str, value: T) -> Result<(), SqlError> {
        validate_topic_filter(filter).map_err(|m| {
            SqlError::new(
                format!("bad topic filter '{filter}': {m}"),
                filter,
                Span::new(0, filter.len()),
            )
        })?;
        let mut node = &mut self.root;
        let levels: Vec<&str> = filter.split('/').collect();
        for (i, level) in levels.iter().enumerate() {
            match *level {
                "#" if i == levels.len() - 1 => {
                    node.hash.push(value);
                    self.len += 1;
                    return Ok(());
                }
                "+" => node = node.plus.get_or_insert_with(Default::default),
                l => node = node.children.entry(l.to_string()).or_default(),
            }
        }
        node.here.push(value);
        self.len += 1;
        Ok(())
    }

    /// Remove the values under `filter` for which `pred` is true; returns them.
    pub fn remove_where(&mut self, filter: &str, mut pred: impl FnMut(&T) -> bool) -> Vec<T> {
        let levels: Vec<&str> = filter.split('/').collect();
        let mut removed = Vec::new();
        Self::remove_rec(&mut self.root, &levels, &mut pred, &mut removed);
        self.len -= removed.len();
        removed
    }

    /// Remove every value under exactly `filter`; returns them.
    pub fn remove(&mut self, filter: &str) -> Vec<T> {
        self.remove_where(filter, |_| true)
    }

    fn remove_rec(
        node: &mut TrieNode<T>,
        levels: &[&str],
        pred: &mut impl FnMut(&T) -> bool,
        out: &mut Vec<T>,
    ) {
        let take = |v: &mut Vec<T>, pred: &mut dyn FnMut(&T) -> bool, out: &mut Vec<T>| {
            let mut i = 0;
            while i < v.len() {
                if pred(&v[i]) {
                    out.push(v.remove(i));
                } else {
                    i += 1;
                }
            }
        };
        match levels {
            [] => take(&mut node.here, pred, out),
            ["#"] => take(&mut node.hash, pred, out),
            [first, rest @ ..] => {
                if *first == "+" {
                    if let Some(child) = node.plus.as_deref_mut() {
                        Self::remove_rec(child, rest, pred, out);
                        if child.is_empty() {
                            node.plus = None;
                        }
                    }
                } else if let Some(child) = node.children.get_mut(*first) {
                    Self::remove_rec(child, rest, pred, out);
                    if child.is_empty() {
                        node.children.remove(*first);
                    }
                }
            }
        }
    }

    /// Call `f` with every value whose filter matches `topic`.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(&T)) {
        Self::walk(&self.root, topic, !topic.starts_with('$'), &mut f);
    }

    /// All values whose filter matches `topic`.
    pub fn matches(&self, topic: &str) -> Vec<&T> {
        let mut out = Vec::new();
        Self::walk(&self.root, topic, !topic.starts_with('$'), &mut |t| {
            out.push(t)
        });
        out
    }

    fn walk<'s>(node: &'s TrieNode<T>, rest: &str, wild_ok: bool, f: &mut dyn FnMut(&'s T)) {
        if wild_ok {
            // `a/#` matches `a` itself and everything below.
            node.hash.iter().for_each(&mut *f);
        }
        // A byte search: `find('/')` compares each hit with `memcmp`.
        let (level, tail) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let plus = if wild_ok { node.plus.as_deref() } else { None };
        for child in [node.children.get(level), plus].into_iter().flatten() {
            match tail {
                Some(t) => Self::walk(child, t, true, f),
                None => {
                    child.here.iter().for_each(&mut *f);
                    child.hash.iter().for_each(&mut *f);
                }
            }
        }
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FROM clause page's examples: which messages trigger a rule.
    #[test]
    fn aws_doc_from_examples() {
        let topics = ["a/b", "a/c", "a/e/f", "b/x"];
        let triggered = |filter: &str| -> Vec<&str> {
            topics
                .iter()
                .copied()
                .filter(|t| topic_matches(filter, t))
                .collect()
        };
        assert_eq!(triggered("a/b"), ["a/b"]);
        assert_eq!(triggered("a/#"), ["a/b", "a/c", "a/e/f"]);
        assert_eq!(triggered("a/+"), ["a/b", "a/c"]);
    }

    #[test]
    fn validation() {
        assert!(validate_topic_filter("a/+/b/#").is_ok());
        assert!(validate_topic_filter("#").is_ok());
        assert!(validate_topic_filter("a/#/b").is_err());
        assert!(validate_topic_filter("a/b#").is_err());
        assert!(validate_topic_filter("a/b+").is_err());
        assert!(validate_topic_filter("").is_err());
    }

    fn hits(trie: &TopicTrie<&'static str>, topic: &str) -> Vec<&'static str> {
        let mut v = Vec::new();
        trie.for_each_match(topic, |x| v.push(*x));
        v.sort();
        let mut w: Vec<&str> = trie.matches(topic).into_iter().copied().collect();
        w.sort();
        assert_eq!(v, w);
        v
    }

    #[test]
    fn matching() {
        let mut t = TopicTrie::new();
        for f in [
            "a/b", "a/+", "a/#", "#", "+/b", "+", "a/+/c", "$SYS/#", "a/b/#",
        ] {
            t.insert(f, f).unwrap();
        }
        assert_eq!(
            hits(&t, "a/b"),
            vec!["#", "+/b", "a/#", "a/+", "a/b", "a/b/#"]
        );
        assert_eq!(hits(&t, "a"), vec!["#", "+", "a/#"]);
        assert_eq!(hits(&t, "a/x/c"), vec!["#", "a/#", "a/+/c"]);
        assert_eq!(hits(&t, "$SYS/x"), vec!["$SYS/#"]);
        assert_eq!(hits(&t, "a//c"), vec!["#", "a/#", "a/+/c"]);
        for f in [
            "a/b", "a/+", "a/#", "#", "+/b", "+", "a/+/c", "$SYS/#", "a/b/#",
        ] {
            for topic in ["a/b", "a", "a/x/c", "$SYS/x", "a//c", "b/b"] {
                assert_eq!(
                    hits(&t, topic).contains(&f),
                    topic_matches(f, topic),
                    "{f} vs {topic}"
                );
            }
        }
        assert_eq!(t.len(), 9);
        assert_eq!(t.remove("a/+"), vec!["a/+"]);
        assert_eq!(t.len(), 8);
        assert!(!hits(&t, "a/b").contains(&"a/+"));
        assert!(t.insert("a/#/b", "x").is_err());
    }
}
