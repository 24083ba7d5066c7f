//! Property tests: no input makes the parser, checker or template parser panic.

use proptest::prelude::*;
use weir_sql::{Message, Statement, Template};

const TOKENS: &[&str] = &[
    "SELECT",
    "VALUE",
    "*",
    "FROM",
    "'a/+/b'",
    "'#'",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "CONTAINS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "AS",
    "x",
    "a.b",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ".",
    ":",
    "=",
    "<>",
    "<",
    ">=",
    "+",
    "-",
    "/",
    "%",
    "1",
    "2.5",
    "-3",
    "'s'",
    "\"d\"",
    "true",
    "null",
    "topic",
    "topic(2)",
    "abs(",
    "substring(",
    "concat(",
    "cast(",
    "Int",
    "regexp_matches(",
    "'('",
    "get(",
    "`q`",
    "${",
    "$",
    "'",
    "\"",
    "aws_lambda(",
    "1e999",
    "99999999999999999999",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..30).prop_map(|v| v.join(" "))
}

fn exercise(s: &str) {
    let payload = serde_json::json!({"a": {"b": [1, "x", {"c": null}]}, "x": 2.5});
    let msg = Message::new("a/b/c", &payload);
    if let Ok(st) = Statement::parse(s) {
        let _ = st.eval(&msg);
    }
    let _ = Statement::diagnostics(s);
    if let Ok(t) = Template::parse(s) {
        let _ = t.render(&msg);
    }
    if let Err(e) = Statement::parse(s) {
        let _ = e.render("f", s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in ".{0,80}") {
        exercise(&s);
    }

    #[test]
    fn token_soups_never_panic(s in soup()) {
        exercise(&s);
        exercise(&format!("SELECT {s} FROM 'a/#'"));
        exercise(&format!("SELECT a FROM 'a/#' WHERE {s}"));
        exercise(&format!("x ${{{s}}} y"));
    }
}
